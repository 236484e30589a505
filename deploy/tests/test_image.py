"""The container recipe, checked without a Docker engine (none runs on this machine).

Reads deploy/Dockerfile and .dockerignore as text: the build is the standard
`cargo build --release --locked`, the runtime is non-root, the ports and paths agree
with the config the image ships and with the Kubernetes manifests, and that config
passes `wxgate check-config` with its documented environment.
"""

import fnmatch
import os
import pathlib
import re
import subprocess
import tomllib

from manifests import listen_port, load_overlay

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def instructions(name):
    """Arguments of every `NAME ...` instruction, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1].strip() for line in text.splitlines()
            if line.strip().upper().startswith(name + " ")]


def runtime_stage():
    """The instructions after the last FROM (what the image runs with)."""
    return DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]


def image_config():
    (env,) = [e for e in instructions("ENV") if e.startswith("WXGATE_CONFIG=")]
    return env.split("=", 1)[1]


def test_build_stage_is_standard():
    froms = instructions("FROM")
    assert len(froms) == 2, "a build stage and a runtime stage"
    assert froms[0].startswith("rust:"), "build with the official Rust image"
    assert any("cargo build --release --locked" in r for r in instructions("RUN"))
    assert froms[1].startswith(("gcr.io/distroless/cc", "debian:")), froms[1]


def test_runtime_debian_matches_the_build_stage():
    args = dict(a.split("=", 1) for a in instructions("ARG") if "=" in a)
    numbers = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
    assert numbers[args["DEBIAN_RELEASE"]] == args["DEBIAN_VERSION"], args
    froms = instructions("FROM")
    assert "${DEBIAN_RELEASE}" in froms[0] and "${DEBIAN_VERSION}" in froms[1], froms


def test_runtime_is_non_root_and_probe_free():
    runtime = runtime_stage()
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert users and users[-1].split(":")[0] == "65532"
    assert not re.search(r"^HEALTHCHECK", DOCKERFILE, re.M)
    assert re.search(r"^STOPSIGNAL\s+SIGTERM$", DOCKERFILE, re.M)
    assert not re.search(r"^RUN\b", runtime, re.M), "distroless: no shell in the runtime stage"


def test_ports_and_paths_match_the_shipped_config():
    config_path = image_config()
    copied = [c.split()[-1] for c in instructions("COPY") if "deploy/wxgate.toml" in c]
    assert copied == [config_path]
    cfg = tomllib.loads((DEPLOY / "wxgate.toml").read_text())
    exposed = sorted(int(p) for e in instructions("EXPOSE") for p in e.split())
    assert exposed == sorted([listen_port(cfg["server"]["listen"]), listen_port(cfg["admin"]["listen"])])
    assert cfg["session"]["data_dir"] in " ".join(instructions("VOLUME"))


def test_manifests_use_the_image_ports_and_user():
    exposed = sorted(int(p) for e in instructions("EXPOSE") for p in e.split())
    for name in ("sidecar", "replicas"):
        o = load_overlay(name)
        assert sorted([o.port("http"), o.port("admin")]) == exposed
        assert o.container["image"].startswith("registry.example.com/wxgate:")


def test_dockerignore_lets_the_build_inputs_through():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def included(path):
        keep = True  # last matching pattern wins, as in Docker
        for p in patterns:
            neg = p.startswith("!")
            pat = p.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = neg
        return keep

    sources = []
    for c in instructions("COPY"):
        if "--from=" in c:
            continue
        sources += [a for a in c.split()[:-1] if not a.startswith("--")]
    assert sources, "the Dockerfile copies nothing from the context"
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert included(src), f"COPY {src}: excluded by .dockerignore"
    assert not included("target/release/wxgate")
    assert not included(".git/config")


def test_shipped_config_passes_check_config(wxgate_bin):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WX", "WXGATE"))}
    env.update(WX_APPID="wx0123456789abcdef", WX_APP_SECRET="dummy",
               WXGATE_UPSTREAM="http://legacy:9000")
    config = str(DEPLOY / "wxgate.toml")
    out = subprocess.run([wxgate_bin, "check-config", "--config", config], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    del env["WXGATE_UPSTREAM"]
    out = subprocess.run([wxgate_bin, "check-config", "--config", config], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "WXGATE_UPSTREAM" in out.stderr
