#!/usr/bin/env bash
# Tests of deploy/: render every kustomization, validate the result offline against the
# Kubernetes OpenAPI schemas, then check that the manifests agree with each other and
# with the gateway (deploy/tests, pytest; they run `wxgate check-config` and start
# `wxgate run` on loopback). The container image is not built: no Docker engine here.
#
#   deploy/test.sh                  # from anywhere; builds target/debug/wxgate if needed
#
# Needs: python3 (venv, pip reaching PyPI), cargo, and kustomize -- either a `kustomize`
# binary or kubectl's built-in `kubectl kustomize`.
# Knobs: WXGATE_BIN (a built wxgate), DEPLOY_TEST_VENV (where the venv lives),
# K8S_VERSIONS (schema versions, default "1.30.0 1.37.0").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="${DEPLOY_TEST_VENV:-$root/target/deploy-venv}"
# 1.30: the first release whose preStop `sleep` action is on by default.
k8s_versions="${K8S_VERSIONS:-1.30.0 1.37.0}"
# Pinned: kubernetes-validate ships the schemas it validates against.
python_reqs=(kubernetes-validate==1.37.0 PyYAML==6.0.4 pytest==9.2.0)

log() { echo "deploy/test.sh: $*"; }

# --- tools -------------------------------------------------------------------------------
if command -v kustomize >/dev/null 2>&1; then
    render=(kustomize build)
    log "renderer: kustomize $(kustomize version 2>/dev/null | head -n1)"
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    render=(kubectl kustomize)
    log "renderer: kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -i kustomize || echo 'version unknown'))"
else
    echo "deploy/test.sh: neither kustomize nor kubectl is installed; install one of them" >&2
    echo "  (kubectl ships kustomize as 'kubectl kustomize')" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    log "creating venv $venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${python_reqs[@]}"
log "$("$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(kubernetes-validate|pytest|PyYAML) ' | tr -s ' ' | paste -sd ',' -)"

if [ -z "${WXGATE_BIN:-}" ]; then
    (cd "$root" && cargo build --locked --quiet)
    WXGATE_BIN="$root/target/debug/wxgate"
fi
export WXGATE_BIN
log "gateway: $("$WXGATE_BIN" --version)"

# --- render ------------------------------------------------------------------------------
rendered="$(mktemp -d "${TMPDIR:-/tmp}/wxgate-deploy.XXXXXX")"
trap 'rm -rf "$rendered"' EXIT
export WXGATE_RENDERED_DIR="$rendered"

for dir in base overlays/sidecar overlays/replicas examples/replicas-monitored examples/inject; do
    name="$(basename "$dir")"
    "${render[@]}" "$here/k8s/$dir" >"$rendered/$name.yaml"
    log "rendered k8s/$dir: $(grep -c '^kind:' "$rendered/$name.yaml") resources"
done
# The Kubernetes schemas know no prometheus-operator kinds: those are checked by the
# tests (deploy/tests/test_monitoring.py); the rest of the monitored overlay is validated.
"$venv/bin/python" - "$rendered/replicas-monitored.yaml" "$rendered/replicas-monitored-core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
assert len(core) < len(docs), "the monitoring component added no prometheus-operator kind"
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
PY

# --- schemas -----------------------------------------------------------------------------
for version in $k8s_versions; do
    for name in base sidecar replicas replicas-monitored-core inject; do
        # --strict: unknown fields (typos) are errors, as the API server's strict
        # field validation would make them.
        "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered/$name.yaml"
        log "schema ok: $name against Kubernetes $version"
    done
done

# --- consistency, image recipe, hot reload -----------------------------------------------
cd "$here/tests"
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of the work tree
"$venv/bin/python" -m pytest -q -p no:cacheprovider .
