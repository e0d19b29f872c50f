"""Fixtures of the collector tests: an emulated Kubernetes API (store + official client) per test."""

from __future__ import annotations

import pytest

from services.runtime.kube import load_api_client


@pytest.fixture
def kube(tmp_path):
    """(KubeStore, kubernetes ApiClient) of a fresh emulated cluster on 127.0.0.1."""
    from emulator.kubeapi import KubeApiServer, write_kubeconfig
    from emulator.kubestore import KubeStore

    store = KubeStore()
    server = KubeApiServer(store)
    server.start()
    path = tmp_path / "kubeconfig"
    write_kubeconfig(str(path), server.url)
    api = load_api_client(str(path))
    yield store, api
    api.close()
    server.stop()


@pytest.fixture
def dead_api(tmp_path):
    """A kubernetes ApiClient whose API server does not listen (127.0.0.1:9)."""
    from emulator.kubeapi import write_kubeconfig

    path = tmp_path / "dead-kubeconfig"
    write_kubeconfig(str(path), "http://127.0.0.1:9")
    api = load_api_client(str(path))
    api.configuration.retries = 0
    yield api
    api.close()
