"""The emulated Kubernetes API on 127.0.0.1 and an official-client ApiClient for it, per test."""

from __future__ import annotations

import pytest

from services.runtime.kube import load_api_client


@pytest.fixture
def cluster(tmp_path):
    """A fresh emulated cluster; yields the kubernetes.client.ApiClient talking to it."""
    from emulator.kubeapi import KubeApiServer, write_kubeconfig
    from emulator.kubestore import KubeStore

    server = KubeApiServer(KubeStore())
    server.start()
    path = tmp_path / "kubeconfig"
    write_kubeconfig(str(path), server.url)
    api = load_api_client(str(path))
    yield api
    api.close()
    server.stop()
