"""The emulator's opt-in request record: HTTP method + path -> RBAC verb, group, resource and subresource."""

from __future__ import annotations

import http.client
import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from emulator.kubeapi import KubeApiServer, KubeRequest, request_info, write_kubeconfig
from emulator.kubestore import KubeStore

NS = "llm"


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    pytest.param("GET", "/apis/apps/v1/namespaces/llm/deployments", {}, ("list", "apps", "v1", "deployments", "", "llm",
                                                                          ""), id="collection_get_is_list"),
    pytest.param("GET", "/apis/apps/v1/namespaces/llm/deployments", {"watch": "true"},
                 ("watch", "apps", "v1", "deployments", "", "llm", ""), id="collection_get_with_watch_is_watch"),
    pytest.param("GET", "/apis/apps/v1/namespaces/llm/deployments", {"watch": "false"},
                 ("list", "apps", "v1", "deployments", "", "llm", ""), id="watch_false_is_list"),
    pytest.param("GET", "/apis/apps/v1/deployments", {}, ("list", "apps", "v1", "deployments", "", "", ""),
                 id="all_namespaces_list"),
    pytest.param("GET", "/apis/apps/v1/namespaces/llm/deployments/granite", {},
                 ("get", "apps", "v1", "deployments", "", "llm", "granite"), id="named_get_is_get"),
    pytest.param("GET", "/apis/apps/v1/namespaces/llm/deployments/granite", {"watch": "true"},
                 ("get", "apps", "v1", "deployments", "", "llm", "granite"), id="named_get_stays_get"),
    pytest.param("PATCH", "/apis/apps/v1/namespaces/llm/deployments/granite", {},
                 ("patch", "apps", "v1", "deployments", "", "llm", "granite"), id="patch"),
    pytest.param("PATCH", "/apis/apps/v1/namespaces/llm/deployments/granite/scale", {},
                 ("patch", "apps", "v1", "deployments", "scale", "llm", "granite"), id="patch_scale"),
    pytest.param("GET", "/apis/apps/v1/namespaces/llm/deployments/granite/scale", {},
                 ("get", "apps", "v1", "deployments", "scale", "llm", "granite"), id="get_scale"),
    pytest.param("PUT", "/apis/apps/v1/namespaces/llm/deployments/granite/status", {},
                 ("update", "apps", "v1", "deployments", "status", "llm", "granite"), id="put_status_is_update"),
    pytest.param("POST", "/apis/apps/v1/namespaces/llm/deployments", {},
                 ("create", "apps", "v1", "deployments", "", "llm", ""), id="post_is_create"),
    pytest.param("DELETE", "/apis/apps/v1/namespaces/llm/deployments/granite", {},
                 ("delete", "apps", "v1", "deployments", "", "llm", "granite"), id="named_delete"),
    pytest.param("DELETE", "/apis/apps/v1/namespaces/llm/deployments", {},
                 ("deletecollection", "apps", "v1", "deployments", "", "llm", ""), id="collection_delete"),
    pytest.param("GET", "/api/v1/namespaces/llm/pods", {}, ("list", "", "v1", "pods", "", "llm", ""),
                 id="core_group_is_empty"),
    pytest.param("GET", "/api/v1/nodes", {}, ("list", "", "v1", "nodes", "", "", ""), id="cluster_scoped"),
    pytest.param("GET", "/api/v1/nodes/n1", {}, ("get", "", "v1", "nodes", "", "", "n1"), id="cluster_scoped_get"),
    pytest.param("GET", "/api/v1/namespaces", {}, ("list", "", "v1", "namespaces", "", "", ""),
                 id="namespaces_list"),
    pytest.param("GET", "/api/v1/namespaces/llm", {}, ("get", "", "v1", "namespaces", "", "llm", "llm"),
                 id="namespace_get"),
    pytest.param("PUT", "/api/v1/namespaces/llm/status", {}, ("update", "", "v1", "namespaces", "status", "llm",
                                                              "llm"), id="namespace_status"),
    pytest.param("GET", "/apis/autoscaling/v2/namespaces/llm/horizontalpodautoscalers", {},
                 ("list", "autoscaling", "v2", "horizontalpodautoscalers", "", "llm", ""), id="hpa"),
    pytest.param("GET", "/apis/keda.sh/v1alpha1/namespaces/llm/scaledobjects", {},
                 ("list", "keda.sh", "v1alpha1", "scaledobjects", "", "llm", ""), id="keda_custom_resource"),
    pytest.param("GET", "/api/v1/watch/namespaces/llm/pods", {}, ("watch", "", "v1", "pods", "", "llm", ""),
                 id="deprecated_watch_prefix"),
    pytest.param("GET", "/apis/example.com/v1/namespaces/llm/widgets/w", {},
                 ("get", "example.com", "v1", "widgets", "", "llm", "w"), id="unserved_resource_still_mapped"),
])
def test_request_info_maps_method_and_path_to_rbac_terms(method, path, query, expected) -> None:
    assert request_info(method, path, query) == KubeRequest(*expected)


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/version", "/healthz",
                                  "/openapi/v2"])
def test_discovery_and_health_are_non_resource_requests(path) -> None:
    assert request_info("GET", path, {}) is None


def test_rbac_resource_joins_the_subresource() -> None:
    assert KubeRequest("patch", "apps", "v1", "deployments", "scale").rbac_resource == "deployments/scale"
    assert KubeRequest("list", "apps", "v1", "deployments").rbac_resource == "deployments"


@pytest.fixture
def recording(tmp_path):
    """(KubeApiServer recording its requests, official-client ApiClient for it)."""
    server = KubeApiServer(KubeStore(), record_requests=True)
    server.start()
    configuration = client.Configuration()
    config.load_kube_config(config_file=write_kubeconfig(str(tmp_path / "kubeconfig"), server.url),
                            client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield server, api
    api.close()
    server.stop()


def deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def test_the_server_records_the_official_clients_calls_in_order(recording) -> None:
    server, api = recording
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("granite"))
    apps.list_namespaced_deployment(NS)
    apps.list_deployment_for_all_namespaces(label_selector="a=b")
    apps.read_namespaced_deployment("granite", NS)
    apps.patch_namespaced_deployment("granite", NS, {"metadata": {"labels": {"x": "y"}}})
    apps.patch_namespaced_deployment_scale("granite", NS, {"spec": {"replicas": 2}})
    core.list_node()
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("absent", NS)
    apps.delete_namespaced_deployment("granite", NS)
    seen = [(r.verb, r.group, r.rbac_resource, r.namespace, r.name) for r in server.requests()]
    assert seen == [("create", "apps", "deployments", NS, ""),
                    ("list", "apps", "deployments", NS, ""),
                    ("list", "apps", "deployments", "", ""),
                    ("get", "apps", "deployments", NS, "granite"),
                    ("patch", "apps", "deployments", NS, "granite"),
                    ("patch", "apps", "deployments/scale", NS, "granite"),
                    ("list", "", "nodes", "", ""),
                    ("get", "apps", "deployments", NS, "absent"),
                    ("delete", "apps", "deployments", NS, "granite")]
    server.clear_requests()
    assert server.requests() == []


def test_a_watch_is_recorded_as_watch(recording) -> None:
    server, api = recording
    stream = watch.Watch().stream(client.AppsV1Api(api).list_namespaced_deployment, NS, timeout_seconds=1)
    for _ in stream:
        break
    assert [(r.verb, r.resource) for r in server.requests()] == [("watch", "deployments")]


def test_concurrent_requests_are_all_recorded(recording) -> None:
    server, api = recording
    core = client.CoreV1Api(api)

    def calls() -> None:
        for _ in range(10):
            core.list_namespaced_pod(NS)

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.requests() == [KubeRequest("list", "", "v1", "pods", "", NS)] * 40


def test_without_record_requests_nothing_is_kept_and_asking_raises() -> None:
    with KubeApiServer(KubeStore()) as server:
        server.clear_requests()
        with pytest.raises(RuntimeError, match="record_requests=True"):
            server.requests()


def _status(server: KubeApiServer, method: str, path: str, token: str | None = None) -> int:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_unserved_resources_are_recorded_and_discovery_and_unauthenticated_requests_are_not() -> None:
    with KubeApiServer(KubeStore(), token="secret", record_requests=True) as server:
        assert _status(server, "GET", "/apis/apps/v1/namespaces/llm/deployments", token="wrong") == 401
        assert _status(server, "GET", "/apis", token="secret") == 200
        assert _status(server, "GET", "/healthz", token="secret") == 200
        assert _status(server, "GET", "/apis/example.com/v1/namespaces/llm/widgets?watch=true", token="secret") == 404
        assert server.requests() == [KubeRequest("watch", "example.com", "v1", "widgets", "", NS)]
