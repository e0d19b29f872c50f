"""Kubernetes API client construction: in-cluster config when running in a pod, else the kubeconfig file.

The kubeconfig path is the client's own convention: the ``KUBECONFIG`` variable, else ``~/.kube/config``.
"""

from __future__ import annotations

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from services.core.errors import UnavailableError


def load_api_client(kubeconfig_path: str | None = None) -> client.ApiClient:
    """An ApiClient for the cluster: ``kubeconfig_path`` if given, else in-cluster, else KUBECONFIG.

    Raises UnavailableError when no configuration can be found.
    """
    configuration = client.Configuration()
    try:
        if kubeconfig_path:
            config.load_kube_config(config_file=kubeconfig_path, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except (ConfigException, OSError) as err:
        raise UnavailableError(f"no Kubernetes configuration found: {err}") from err
    return client.ApiClient(configuration)
