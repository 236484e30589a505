"""The rendered overlays agree with themselves and with the gateway config they carry.

Schema validity is checked separately (kubernetes-validate in deploy/test.sh); these
tests check what a schema cannot: that ports, probe paths, mounts, env names, selectors
and timeouts line up, and that the ConfigMap's config passes `wxgate check-config`.
"""

import base64
import ipaddress
import os
import posixpath
import subprocess
import tempfile
import urllib.parse

from manifests import listen_host, listen_port, load_overlay, seconds

# What a valid [redis] encryption_key looks like (32 bytes, base64), for check-config.
DUMMY_KEY = base64.b64encode(bytes(range(32))).decode()
# The placeholder of every shipped Secret value; wxgate refuses the key and token ones.
PLACEHOLDER = "REPLACE_ME"
# [admin] allow when the config leaves it out (contract, section 2).
DEFAULT_ADMIN_ALLOW = ["127.0.0.1/32", "::1/128"]


def test_listeners_match_container_ports(overlay):
    cfg = overlay.config
    assert listen_port(cfg["server"]["listen"]) == overlay.port("http")
    assert listen_port(cfg["admin"]["listen"]) == overlay.port("admin")
    # The kubelet probes the pod IP: an admin listener on loopback would fail every probe.
    assert listen_host(cfg["admin"]["listen"]) in ("0.0.0.0", "::")
    assert listen_host(cfg["server"]["listen"]) in ("0.0.0.0", "::")


def test_probes_hit_the_admin_endpoints(overlay):
    c = overlay.container
    admin = overlay.port("admin")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, f"{probe} must ask {path}"
        assert overlay.resolve_port(get["port"]) == admin, f"{probe} must use the admin port"


def test_service_reaches_the_public_port_only(overlay):
    svc = overlay.get("Service", "wxgate")
    labels = overlay.pod_labels
    assert svc["spec"]["selector"].items() <= labels.items()
    targets = [overlay.resolve_port(p["targetPort"]) for p in svc["spec"]["ports"]]
    assert targets == [overlay.port("http")], "the Service must target wxgate's public port only"


def test_other_containers_expose_no_ports(overlay):
    # In the sidecar pattern the app is reachable only through wxgate.
    for c in overlay.pod["containers"]:
        if c["name"] != "wxgate":
            assert not c.get("ports"), f"container {c['name']} must not expose ports"


def test_config_and_accounts_are_mounted(overlay):
    files = overlay.mounted_files(overlay.config_dir)
    assert posixpath.basename(overlay.config_path) in files
    accounts = overlay.config.get("accounts", {}).get("file")
    if accounts:
        path = overlay.config_relative(accounts)
        # Same directory as the config, mounted as a directory (no subPath): the
        # kubelet's atomic swap of a ConfigMap update is seen by wxgate's watcher.
        assert posixpath.dirname(path) == overlay.config_dir
        assert posixpath.basename(path) in files
        mount = overlay.mount_for(path)
        assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"


def test_accounts_configmap_is_updated_in_place(overlay):
    # The accounts file is hot-reloaded: its ConfigMap keeps its name (no hash suffix),
    # so `kubectl apply` changes the mounted file instead of rolling the pods.
    mount = overlay.mount_for(overlay.config_dir)
    names = overlay.configmap_sources(overlay.volume(mount["name"]))
    holder = [n for n in names if "accounts.toml" in overlay.get("ConfigMap", n).get("data", {})]
    assert holder == ["wxgate-accounts"]


def test_data_dir_is_a_writable_volume(overlay):
    assert overlay.container["securityContext"]["readOnlyRootFilesystem"] is True
    data_dir = overlay.config_relative(overlay.config["session"].get("data_dir", "./data"))
    mount = overlay.mount_for(data_dir)
    assert mount, f"data_dir {data_dir} is on the read-only root filesystem"
    assert not mount.get("readOnly"), f"data_dir {data_dir} is mounted read-only"
    volume = overlay.volume(mount["name"])
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume
    if "persistentVolumeClaim" in volume:
        overlay.get("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        # One pod at a time may hold a ReadWriteOnce volume and the bindings file.
        assert overlay.deployment["spec"].get("replicas") == 1
        assert overlay.deployment["spec"]["strategy"]["type"] == "Recreate"


def test_every_config_variable_comes_from_the_secret(overlay):
    env = overlay.env
    assert overlay.config_vars, "the config should read its secrets through ${VAR}"
    for var in overlay.config_vars:
        assert var in env, f"${{{var}}} is used by the config but not set on the container"
        ref = env[var].get("valueFrom", {}).get("secretKeyRef")
        assert ref, f"{var} should come from a Secret"
        overlay.secret_value(ref["name"], ref["key"])  # the Secret and key exist
    for name, entry in env.items():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert name in overlay.config_vars, f"env {name} is set but the config never reads it"


def test_volume_mounts_have_volumes(overlay):
    for c in overlay.pod["containers"]:
        for m in c.get("volumeMounts", []):
            overlay.volume(m["name"])
    for v in overlay.pod["volumes"]:
        for cm in overlay.configmap_sources(v):
            overlay.get("ConfigMap", cm)
        for secret, items in overlay.secret_sources(v):
            for key in items or {}:
                overlay.secret_value(secret, key)


def test_pods_are_hardened(overlay):
    pod_sc = overlay.pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert overlay.pod["automountServiceAccountToken"] is False
    for c in overlay.pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert "add" not in sc["capabilities"], c["name"]
    # The image's user (deploy/Dockerfile: USER 65532).
    assert overlay.container["securityContext"]["runAsUser"] == 65532


def test_grace_period_covers_prestop_and_drain(overlay):
    drain = seconds(overlay.config["server"].get("drain_timeout", "30s"))
    pre_stop = overlay.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = overlay.pod["terminationGracePeriodSeconds"]
    assert pre_stop >= 1
    assert grace > pre_stop + drain, f"grace {grace}s <= preStop {pre_stop}s + drain {drain}s"


def test_resources_are_set(overlay):
    res = overlay.container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"]
    assert res["limits"]["memory"]
    assert "cpu" not in res["limits"], "a CPU limit throttles the proxy's latency"


def test_network_policy_ports_exist(overlay):
    for np in overlay.all("NetworkPolicy"):
        selector = np["spec"]["podSelector"]["matchLabels"]
        if selector.items() <= overlay.pod_labels.items():
            for rule in np["spec"]["ingress"]:
                for p in rule["ports"]:
                    overlay.resolve_port(p["port"])


def test_config_passes_check_config(overlay, wxgate_bin):
    """The ConfigMap's files, laid out as mounted, pass check-config with dummy secrets."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in config_files(overlay).items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(content)
        config = os.path.join(tmp, posixpath.basename(overlay.config_path))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WX", "WXGATE"))}
        env.update({var: dummy_for(overlay, var) for var in overlay.config_vars})
        out = subprocess.run([wxgate_bin, "check-config", "--config", config], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("\n") == 1, out.stdout
        store = overlay.config["session"]["store"]
        assert f"store {store}" in out.stdout

        # Without the Secret's variables the same file is refused, naming the variable.
        missing = overlay.config_vars[0]
        del env[missing]
        out = subprocess.run([wxgate_bin, "check-config", "--config", config], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and missing in out.stderr, out.stderr
        env[missing] = dummy_for(overlay, missing)

        # The Secret files as shipped (placeholders) are refused: nobody runs the
        # example's admin token by accident.
        for name, (kind, content) in overlay.mounted_sources(overlay.config_dir).items():
            if kind == "Secret" and content == PLACEHOLDER:
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(content)
                out = subprocess.run([wxgate_bin, "check-config", "--config", config], env=env,
                                     capture_output=True, text=True, timeout=60)
                assert out.returncode == 1, f"{name}: the placeholder passed check-config"
                assert PLACEHOLDER not in out.stderr, "check-config echoed a secret file's value"


def dummy_for(overlay, var):
    value = overlay.env_value(var)
    if value != PLACEHOLDER:
        return value
    return DUMMY_KEY if var.endswith("_KEY") else "dummy-" + var.lower()


def config_files(overlay):
    """The config directory's files as mounted, Secret placeholders replaced by dummies."""
    files = {}
    for name, (kind, content) in overlay.mounted_sources(overlay.config_dir).items():
        placeholder = kind == "Secret" and content == PLACEHOLDER
        files[name] = "dummy-" + name + "-0123456789abcdef" if placeholder else content
    return files


# --- what sits in front of the gateway, and who may use its admin data endpoints -----------


def ingress_backends(overlay):
    """The Service backends of every Ingress: (service name, port name or number)."""
    backends = []
    for ing in overlay.all("Ingress"):
        spec = ing["spec"]
        services = [spec["defaultBackend"]["service"]] if "defaultBackend" in spec else []
        services += [p["backend"]["service"] for r in spec.get("rules", []) for p in r["http"]["paths"]]
        backends += [(svc["name"], svc["port"].get("name", svc["port"].get("number"))) for svc in services]
    return backends


def test_every_topology_ships_an_ingress_to_the_gateway(overlay):
    # Both are drawn "mini-program -> ingress -> Service" (deploy/README.md).
    backends = ingress_backends(overlay)
    assert backends, "no Ingress example in front of the gateway"
    svc = overlay.get("Service", "wxgate")
    ports = {p["name"] for p in svc["spec"]["ports"]} | {p["port"] for p in svc["spec"]["ports"]}
    for name, port in backends:
        assert name == "wxgate", f"an Ingress bypasses the gateway: it routes to Service {name}"
        assert port in ports, f"the Ingress routes to port {port!r}, which Service wxgate lacks"


def test_behind_an_ingress_the_ingress_is_a_trusted_proxy(overlay):
    if not ingress_backends(overlay):
        return
    proxies = overlay.config["server"].get("trusted_proxies", [])
    # Empty, every user shares the ingress's login bucket and X-Real-IP shows the ingress.
    assert proxies, "an Ingress fronts the gateway but [server] trusted_proxies is empty"
    for cidr in proxies:
        net = ipaddress.ip_network(cidr)  # strict: no host bits set
        assert net.is_private, f"{cidr}: trust only the cluster's private ranges"
        # Any peer in these ranges may claim any client IP: never the whole internet.
        assert net.prefixlen >= (8 if net.version == 4 else 32), f"{cidr} is too broad"


def test_admin_data_endpoints_stay_in_the_pod(overlay):
    admin = overlay.config["admin"]
    # The admin port listens on the pod IP for the kubelet's probes (see above); the data
    # endpoints (/bindings/..., /sessions/..., /wechat/...) are then for this pod's own
    # containers and `kubectl port-forward` only ...
    for cidr in admin.get("allow", DEFAULT_ADMIN_ALLOW):
        assert ipaddress.ip_network(cidr).is_loopback, f"[admin] allow {cidr} reaches beyond the pod"
    # ... and need the admin token, read from a Secret: never inline in a ConfigMap.
    assert "token" not in admin, "[admin] token would sit in a ConfigMap: use token_file"
    assert "token_file" in admin, "[admin] token_file is not set"
    path = overlay.config_relative(admin["token_file"])
    sources = overlay.mounted_sources(posixpath.dirname(path))
    name = posixpath.basename(path)
    assert name in sources, f"[admin] token_file {path} is not mounted"
    assert sources[name][0] == "Secret", f"[admin] token_file {path} comes from a {sources[name][0]}"


# --- per overlay -------------------------------------------------------------------------


def sidecar():
    return load_overlay("sidecar")


def replicas():
    return load_overlay("replicas")


def test_sidecar_routes_stay_on_loopback():
    o = sidecar()
    assert o.config["session"]["store"] == "memory"
    for route in o.config["routes"]:
        host = urllib.parse.urlsplit(route["upstream"]).hostname
        assert ipaddress.ip_address(host).is_loopback, route
    app = next(c for c in o.pod["containers"] if c["name"] == "app")
    listen = {e["name"]: e.get("value") for e in app.get("env", [])}.get("LISTEN_ADDR")
    upstream = urllib.parse.urlsplit(o.config["routes"][0]["upstream"])
    assert listen == f"{upstream.hostname}:{upstream.port}"


def test_every_selector_names_the_install(overlay):
    # a second install (another instance value) must never select this one's pods
    if overlay.name == "base":
        return
    instance = overlay.pod_labels["app.kubernetes.io/instance"]
    selectors = [overlay.deployment["spec"]["selector"]["matchLabels"]]
    selectors += [s["spec"]["selector"] for s in overlay.all("Service")]
    selectors += [n["spec"]["podSelector"]["matchLabels"] for n in overlay.all("NetworkPolicy")]
    selectors += [p["spec"]["selector"]["matchLabels"] for p in overlay.all("PodDisruptionBudget")]
    selectors += [t["labelSelector"]["matchLabels"] for t in overlay.pod.get("topologySpreadConstraints", [])]
    for selector in selectors:
        assert selector.get("app.kubernetes.io/instance") == instance, selector


def test_sidecar_app_outlives_wxgates_drain():
    # wxgate drains after its preStop; the app must still answer what it forwards then
    o = sidecar()
    drain = seconds(o.config["server"].get("drain_timeout", "30s"))
    wxgate_stop = o.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    app = next(c for c in o.pod["containers"] if c["name"] == "app")
    app_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert app_stop >= wxgate_stop + drain, f"app preStop {app_stop}s < {wxgate_stop}s + {drain}s"
    grace = o.pod["terminationGracePeriodSeconds"]
    assert grace > app_stop, f"grace {grace}s <= the app's preStop {app_stop}s"


def test_replicas_share_a_redis_store():
    o = replicas()
    cfg = o.config
    assert cfg["session"]["store"] == "redis"
    assert "replicas" not in o.deployment["spec"], "replicas belong to the HPA"
    url = urllib.parse.urlsplit(o.env_value("WXGATE_REDIS_URL"))
    svc = o.get("Service", url.hostname)
    assert url.port in [p["port"] for p in svc["spec"]["ports"]]
    redis = o.get("StatefulSet", url.hostname)
    assert svc["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "yes"
    # Only wxgate's pods may reach Redis.
    np = o.get("NetworkPolicy", url.hostname)
    sources = np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert sources.items() <= o.pod_labels.items()


def test_replicas_scale_spread_and_budget():
    o = replicas()
    labels = o.pod_labels
    hpa = o.get("HorizontalPodAutoscaler", "wxgate")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", o.deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    # CPU utilisation needs a CPU request to be computed against.
    assert o.container["resources"]["requests"]["cpu"]
    pdb = o.get("PodDisruptionBudget", "wxgate")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    keys = set()
    for tsc in o.pod["topologySpreadConstraints"]:
        assert tsc["labelSelector"]["matchLabels"].items() <= labels.items()
        # a tainted node the pods cannot use must not hold the spread back
        assert tsc.get("nodeTaintsPolicy") == "Honor", tsc
        keys.add(tsc["topologyKey"])
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
