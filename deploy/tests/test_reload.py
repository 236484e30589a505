"""The sidecar overlay's files, laid out as the kubelet mounts them, run for real.

The kubelet writes a ConfigMap volume as `..<timestamp>/` + `..data -> ..<timestamp>` +
one symlink per key, and publishes an update by swapping `..data` (AtomicWriter). This
test reproduces that layout in a temp dir, starts `wxgate run` on loopback with the
overlay's config, swaps in a new accounts file the kubelet's way, and waits for the
gateway to reload it; then stops it with SIGTERM (the image's STOPSIGNAL).
"""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from manifests import load_overlay
from test_manifests import config_files, dummy_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KubeletVolume:
    """A ConfigMap volume directory, written and updated like the kubelet does."""

    def __init__(self, path, files):
        self.path = path
        self.generation = 0
        os.makedirs(path)
        self.publish(files)
        for name in files:
            os.symlink(os.path.join("..data", name), os.path.join(path, name))

    def publish(self, files):
        self.generation += 1
        ts = f"..2026_01_01_00_00_00.{self.generation:09d}"
        os.mkdir(os.path.join(self.path, ts))
        for name, content in files.items():
            with open(os.path.join(self.path, ts, name), "w") as f:
                f.write(content)
        tmp_link = os.path.join(self.path, "..data_tmp")
        os.symlink(ts, tmp_link)
        old = os.readlink(os.path.join(self.path, "..data")) if self.generation > 1 else None
        os.replace(tmp_link, os.path.join(self.path, "..data"))
        if old:
            for name in os.listdir(os.path.join(self.path, old)):
                os.unlink(os.path.join(self.path, old, name))
            os.rmdir(os.path.join(self.path, old))


def wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_accounts_configmap_update_is_hot_reloaded(tmp_path, wxgate_bin):
    o = load_overlay("sidecar")
    files = config_files(o)
    public, admin = free_port(), free_port()
    config = files["wxgate.toml"]
    # Only the addresses and the data volume change; everything else is the overlay's.
    config = config.replace(f'"{o.config["server"]["listen"]}"', f'"127.0.0.1:{public}"')
    config = config.replace(f'"{o.config["admin"]["listen"]}"', f'"127.0.0.1:{admin}"')
    config = config.replace(f'"{o.config["session"]["data_dir"]}"', f'"{tmp_path / "data"}"')
    files["wxgate.toml"] = config

    volume = KubeletVolume(str(tmp_path / "etc-wxgate"), files)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WX", "WXGATE", "RUST_LOG"))}
    env.update({var: dummy_for(o, var) for var in o.config_vars})
    log_path = tmp_path / "wxgate.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [wxgate_bin, "run", "--config", os.path.join(volume.path, "wxgate.toml")],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_status(f"http://127.0.0.1:{admin}/readyz") == 200, "readyz 200")
        assert http_status(f"http://127.0.0.1:{admin}/healthz") == 200
        # The public port answers with the contract's 401 on a required route.
        assert http_status(f"http://127.0.0.1:{public}/api/x") == 401

        def log_has(pattern):
            return lambda: re.search(pattern, log_path.read_text()) is not None

        updated = dict(files, **{"accounts.toml": '[openid]\n"oAbC123" = "10001"\n'})
        volume.publish(updated)
        wait_for(log_has(r"accounts file reloaded.*entries\W+1\b|entries\W+1\b.*accounts file reloaded"),
                 "the reload of the swapped accounts file", timeout=10)

        broken = dict(files, **{"accounts.toml": "[openid\n"})
        volume.publish(broken)
        wait_for(log_has(r"accounts file not reloaded"), "the refusal of a broken file", timeout=10)
        assert proc.poll() is None, "a broken accounts file must not stop the gateway"
        assert http_status(f"http://127.0.0.1:{admin}/healthz") == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, f"SIGTERM should end wxgate with 0, got {rc}:\n{log_path.read_text()}"
