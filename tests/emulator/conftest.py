"""Fixtures for the emulator tests; names are prefixed by the part of the emulator they serve."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubestore import KubeStore


@pytest.fixture
def kube_store():
    """A fresh, empty emulated cluster state (only the default namespace)."""
    return KubeStore()


@pytest.fixture
def kube_server(kube_store):
    """A started Kubernetes API emulator over ``kube_store``, stopped afterwards."""
    server = KubeApiServer(kube_store)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kube_client(kube_server, tmp_path):
    """An official-client ApiClient configured from a kubeconfig file the emulator wrote."""
    path = write_kubeconfig(str(tmp_path / "kubeconfig"), kube_server.url)
    configuration = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield api
    api.close()
