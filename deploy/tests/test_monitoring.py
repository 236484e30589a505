"""The monitoring component (k8s/components/monitoring), as examples/replicas-monitored
renders it: the PodMonitor and the metrics Service reach the admin port of exactly the
wxgate pods, the dashboard ConfigMap carries Grafana's sidecar label and a dashboard
whose queries name only wxgate_* families (tests/dashboard.rs checks that a running
gateway exports each of them), and the base NetworkPolicy lets Prometheus in."""

import json
import pathlib
import re

from manifests import load_overlay

DASHBOARD = (pathlib.Path(__file__).resolve().parent.parent
             / "k8s/components/monitoring/wxgate-dashboard.json")


def monitored():
    return load_overlay("replicas-monitored")


def admin_port(o):
    (port,) = [p for p in o.container["ports"] if p["name"] == "admin"]
    return port


def test_podmonitor_scrapes_the_admin_port_of_wxgate_pods():
    o = monitored()
    (pm,) = o.all("PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"].items() <= o.pod_labels.items()
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == admin_port(o)["name"]
    assert endpoint["path"] == "/metrics"


def test_metrics_service_names_the_admin_port():
    o = monitored()
    svc = o.get("Service", "wxgate-metrics")
    assert svc["spec"]["selector"].items() <= o.pod_labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "admin"
    assert port["port"] == admin_port(o)["containerPort"]
    # the public Service still exposes the public port only
    public = o.get("Service", "wxgate")
    assert [p["targetPort"] for p in public["spec"]["ports"]] != ["admin"]


def test_prometheus_may_reach_the_admin_port():
    o = monitored()
    allowed = [
        port["port"]
        for np in o.all("NetworkPolicy")
        if np["spec"]["podSelector"]["matchLabels"].items() <= o.pod_labels.items()
        for rule in np["spec"]["ingress"]
        if any("namespaceSelector" in f for f in rule.get("from", []))
        for port in rule["ports"]
    ]
    assert "admin" in allowed


def test_dashboard_configmap_is_loaded_by_grafanas_sidecar():
    o = monitored()
    cm = o.get("ConfigMap", "wxgate-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["wxgate-dashboard.json"])
    assert dashboard == json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    families = {m for e in exprs for m in re.findall(r"\b(wxgate_[a-z_]+)", e)}
    # what an operator looks at first: requests, logins, WeChat, the store, sessions
    for needed in ["wxgate_http_requests_total", "wxgate_login_total",
                   "wxgate_wechat_request_duration_seconds_bucket",
                   "wxgate_store_request_duration_seconds_bucket", "wxgate_sessions"]:
        assert needed in families, needed
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
