"""Fixtures for the manifest tests: the rendered overlays and the wxgate binary.

deploy/test.sh renders every overlay with kustomize into $WXGATE_RENDERED_DIR
(<overlay>.yaml) and points $WXGATE_BIN at a built wxgate; the tests only read them.
"""

import os

import pytest

from manifests import load_overlay

OVERLAYS = ["sidecar", "replicas"]


@pytest.fixture(scope="session")
def wxgate_bin():
    path = os.environ.get("WXGATE_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"WXGATE_BIN={path!r} is not an executable wxgate: run deploy/test.sh")
    return path


@pytest.fixture(params=OVERLAYS)
def overlay(request):
    return load_overlay(request.param)
