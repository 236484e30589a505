"""The sidecar-injection Component (k8s/components/sidecar-inject), as examples/inject
renders it into a Deployment of the user's: the wxgate container and volumes are exactly
base's, added beside the user's own container without touching its selector; the
Service and NetworkPolicy select the injected pods; the config files equal base's; and
the example app outlives wxgate's drain."""

import pathlib
import urllib.parse

from manifests import load_overlay, seconds

K8S = pathlib.Path(__file__).resolve().parent.parent / "k8s"


def injected():
    return load_overlay("inject")


def test_the_wxgate_container_and_volumes_are_bases():
    o, base = injected(), load_overlay("base")
    assert o.deployment["metadata"]["name"] == "legacy-app"
    names = [c["name"] for c in o.pod["containers"]]
    assert sorted(names) == ["app", "wxgate"], names
    assert o.container == base.container
    assert o.pod["volumes"] == base.pod["volumes"]
    assert o.pod["securityContext"]["fsGroup"] == base.pod["securityContext"]["fsGroup"]


def test_the_users_deployment_keeps_its_selector_and_gains_the_label():
    o = injected()
    assert o.deployment["spec"]["selector"]["matchLabels"] == {"app": "legacy-app"}
    labels = o.pod_labels
    assert labels["wxgate.io/sidecar"] == "injected" and labels["app"] == "legacy-app"
    svc = o.get("Service", "wxgate")
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "http"
    np = o.get("NetworkPolicy", "wxgate")
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_components_files_are_bases():
    for name in ["wxgate.toml", "accounts.toml", "secrets.env"]:
        ours = (K8S / "components/sidecar-inject" / name).read_text()
        assert ours == (K8S / "base" / name).read_text(), f"{name} differs from base's"


def test_the_example_app_listens_where_wxgate_forwards_and_outlives_its_drain():
    o = injected()
    app = next(c for c in o.pod["containers"] if c["name"] == "app")
    listen = {e["name"]: e.get("value") for e in app.get("env", [])}["LISTEN_ADDR"]
    upstream = urllib.parse.urlsplit(o.config["routes"][0]["upstream"])
    assert listen == f"{upstream.hostname}:{upstream.port}"
    drain = seconds(o.config["server"].get("drain_timeout", "30s"))
    wxgate_stop = o.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    app_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert app_stop >= wxgate_stop + drain
    assert o.pod["terminationGracePeriodSeconds"] > app_stop
