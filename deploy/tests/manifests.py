"""Read a rendered overlay the way the kubelet would assemble the wxgate container.

`Overlay` answers questions such as "which files are mounted at /etc/wxgate", "what is
the value of env var X" and "what does the gateway config say", so that the tests can
compare the manifests with each other and with the config they carry.
"""

import base64
import os
import pathlib
import posixpath
import re
import tomllib

import yaml

VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def listen_port(addr):
    """Port of a `host:port` listen address (IPv6 hosts in brackets)."""
    return int(addr.rsplit(":", 1)[1])


def listen_host(addr):
    return addr.rsplit(":", 1)[0].strip("[]")


def seconds(duration):
    """A wxgate duration string ("500ms", "30s", "2h") in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", duration)
    assert m, f"unexpected duration {duration!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(m.group(1)) * scale


def load_overlay(name):
    """The overlay `name` as rendered by deploy/test.sh into $WXGATE_RENDERED_DIR."""
    rendered = os.environ.get("WXGATE_RENDERED_DIR")
    assert rendered, "WXGATE_RENDERED_DIR is not set: run deploy/test.sh"
    with open(pathlib.Path(rendered) / f"{name}.yaml") as f:
        return Overlay(name, [doc for doc in yaml.safe_load_all(f) if doc])


class Overlay:
    def __init__(self, name, docs):
        self.name = name
        self.docs = docs

    def __repr__(self):
        return f"Overlay({self.name})"

    # --- resources -------------------------------------------------------------------
    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind, name):
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert found, f"{self.name}: no {kind} named {name}"
        return found[0]

    @property
    def deployment(self):
        deps = [
            d
            for d in self.all("Deployment")
            if any(c["name"] == "wxgate" for c in d["spec"]["template"]["spec"]["containers"])
        ]
        assert len(deps) == 1, f"{self.name}: expected one Deployment running wxgate"
        return deps[0]

    @property
    def pod(self):
        return self.deployment["spec"]["template"]["spec"]

    @property
    def pod_labels(self):
        return self.deployment["spec"]["template"]["metadata"]["labels"]

    @property
    def container(self):
        return next(c for c in self.pod["containers"] if c["name"] == "wxgate")

    def port(self, name):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        assert name in ports, f"{self.name}: wxgate has no port named {name}"
        return ports[name]

    def resolve_port(self, port):
        return self.port(port) if isinstance(port, str) else port

    # --- files the container sees ----------------------------------------------------
    def volume(self, name):
        vols = {v["name"]: v for v in self.pod["volumes"]}
        assert name in vols, f"{self.name}: volumeMount {name} has no volume"
        return vols[name]

    def configmap_sources(self, volume):
        if "configMap" in volume:
            return [volume["configMap"]["name"]]
        if "projected" in volume:
            return [s["configMap"]["name"] for s in volume["projected"]["sources"] if "configMap" in s]
        return []

    def secret_sources(self, volume):
        """[(Secret name, {key: file name} or None for every key)] of a volume."""
        if "secret" in volume:
            sources = [volume["secret"] | {"name": volume["secret"]["secretName"]}]
        elif "projected" in volume:
            sources = [s["secret"] for s in volume["projected"]["sources"] if "secret" in s]
        else:
            sources = []
        return [(s["name"], {i["key"]: i["path"] for i in s["items"]} if "items" in s else None)
                for s in sources]

    def mount_for(self, path):
        """The volumeMount whose mountPath is the longest prefix of `path`."""
        best = None
        for m in self.container.get("volumeMounts", []):
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                    best = m
        return best

    def mounted_files(self, directory):
        """{file name: content} of the ConfigMaps and Secrets mounted as `directory`."""
        return {name: content for name, (_, content) in self.mounted_sources(directory).items()}

    def mounted_sources(self, directory):
        """{file name: (kind of the source, content)} of the volume mounted as `directory`."""
        mount = self.mount_for(directory)
        assert mount and mount["mountPath"].rstrip("/") == directory, (
            f"{self.name}: nothing is mounted at {directory}"
        )
        files = {}

        def add(kind, name, content):
            assert name not in files, f"{self.name}: {name} is mounted from two sources"
            files[name] = (kind, content)

        volume = self.volume(mount["name"])
        for cm_name in self.configmap_sources(volume):
            for key, content in self.get("ConfigMap", cm_name).get("data", {}).items():
                add("ConfigMap", key, content)
        for secret_name, items in self.secret_sources(volume):
            secret = self.get("Secret", secret_name)
            keys = items or {k: k for k in {**secret.get("data", {}), **secret.get("stringData", {})}}
            for key, path in keys.items():
                add("Secret", path, self.secret_value(secret_name, key))
        return files

    @property
    def config_path(self):
        args = self.container["args"]
        return args[args.index("--config") + 1]

    @property
    def config_dir(self):
        return posixpath.dirname(self.config_path)

    @property
    def config_text(self):
        files = self.mounted_files(self.config_dir)
        name = posixpath.basename(self.config_path)
        assert name in files, f"{self.name}: {self.config_path} is not in the mounted ConfigMaps"
        return files[name]

    @property
    def config(self):
        return tomllib.loads(self.config_text)

    def config_relative(self, path):
        return path if path.startswith("/") else posixpath.normpath(posixpath.join(self.config_dir, path))

    # --- environment -----------------------------------------------------------------
    @property
    def env(self):
        return {e["name"]: e for e in self.container.get("env", [])}

    def secret_value(self, name, key):
        secret = self.get("Secret", name)
        if key in secret.get("stringData", {}):
            return secret["stringData"][key]
        assert key in secret.get("data", {}), f"{self.name}: Secret {name} has no key {key}"
        return base64.b64decode(secret["data"][key]).decode()

    def env_value(self, var):
        """The value the container gets for `var` (Secret values decoded)."""
        entry = self.env[var]
        if "value" in entry:
            return entry["value"]
        ref = entry["valueFrom"]["secretKeyRef"]
        return self.secret_value(ref["name"], ref["key"])

    @property
    def config_vars(self):
        return sorted(set(VAR.findall(self.config_text)))
