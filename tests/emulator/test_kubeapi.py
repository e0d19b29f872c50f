"""The Kubernetes API emulator, exercised only through the official kubernetes client and a kubeconfig."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from emulator.kubeapi import KubeApiServer, write_kubeconfig
from emulator.kubestore import KubeStore

NS = "llm"


def deployment(name: str, replicas: int = 1, labels: dict | None = None) -> dict:
    """A Deployment manifest whose pods carry app=<name>."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [
                                      {"name": "vllm", "image": "vllm/vllm-openai:v1",
                                       "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                                      {"name": "sidecar", "image": "busybox"}]}}}}


def apps(api) -> client.AppsV1Api:
    return client.AppsV1Api(api)


def raw(response) -> dict:
    """The JSON body of a call made with _preload_content=False."""
    return json.loads(response.data)


def read(api, name: str, namespace: str = NS) -> dict:
    return raw(apps(api).read_namespaced_deployment(name, namespace, _preload_content=False))


def error_of(call, *args, **kwargs) -> tuple[int, dict]:
    """The HTTP status and the Status body of a call that must fail."""
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body)


def containers(obj: dict) -> dict[str, dict]:
    return {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}


@pytest.fixture
def labelled(kube_client):
    """Four Deployments in two namespaces with varied labels."""
    for namespace, name, labels in [("a", "one", {"tier": "gold", "managed": "true"}),
                                    ("a", "two", {"tier": "free"}),
                                    ("b", "three", {"tier": "gold"}),
                                    ("b", "four", {"managed": "false"})]:
        apps(kube_client).create_namespaced_deployment(namespace, deployment(name, labels=labels))
    return kube_client


@pytest.mark.parametrize(("selector", "names"), [
    pytest.param("tier=gold", {"one", "three"}, id="equality"),
    pytest.param("tier==gold,managed=true", {"one"}, id="double-equals-and-conjunction"),
    pytest.param("tier!=gold", {"two", "four"}, id="inequality-includes-missing-key"),
    pytest.param("tier in (free, gold)", {"one", "two", "three"}, id="in"),
    pytest.param("tier notin (gold)", {"two", "four"}, id="notin"),
    pytest.param("managed", {"one", "four"}, id="exists"),
    pytest.param("!managed", {"two", "three"}, id="does-not-exist"),
    pytest.param("", {"one", "two", "three", "four"}, id="empty"),
])
def test_deployments_are_listed_across_namespaces_by_label_selector(labelled, selector, names) -> None:
    listed = apps(labelled).list_deployment_for_all_namespaces(label_selector=selector)
    assert {d.metadata.name for d in listed.items} == names


def test_a_namespaced_list_holds_only_that_namespace(labelled) -> None:
    listed = apps(labelled).list_namespaced_deployment("b", label_selector="tier")
    assert [(d.metadata.namespace, d.metadata.name) for d in listed.items] == [("b", "three")]
    assert listed.kind == "DeploymentList" and listed.metadata.resource_version


def test_an_unparsable_label_selector_answers_400(kube_client) -> None:
    status, body = error_of(apps(kube_client).list_deployment_for_all_namespaces, label_selector="tier in (a")
    assert (status, body["reason"]) == (400, "BadRequest")


def test_a_created_deployment_has_uid_timestamp_generation_and_defaults(kube_client) -> None:
    created = apps(kube_client).create_namespaced_deployment(NS, deployment("granite", replicas=2))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and meta.resource_version
    assert (meta.namespace, meta.generation) == (NS, 1)
    assert created.spec.strategy.type == "RollingUpdate" and created.spec.replicas == 2
    assert apps(kube_client).read_namespaced_deployment("granite", NS).metadata.uid == meta.uid


def test_every_write_changes_the_resource_version_and_only_spec_changes_bump_the_generation(kube_client) -> None:
    api = apps(kube_client)
    versions = [api.create_namespaced_deployment(NS, deployment("granite")).metadata.resource_version]
    labelled = api.patch_namespaced_deployment("granite", NS, {"metadata": {"labels": {"x": "1"}}})
    versions.append(labelled.metadata.resource_version)
    scaled = api.patch_namespaced_deployment("granite", NS, {"spec": {"replicas": 3}})
    versions.append(scaled.metadata.resource_version)
    replaced = api.replace_namespaced_deployment("granite", NS, scaled)
    versions.append(replaced.metadata.resource_version)
    assert len(set(versions)) == 3 and versions[:3] == sorted(versions[:3], key=int)
    assert versions[3] == versions[2], "a replace that changes nothing writes nothing"
    assert (labelled.metadata.generation, scaled.metadata.generation) == (1, 2)


def test_strategic_merge_patch_merges_maps_and_containers_and_env_by_name(kube_client) -> None:
    api = apps(kube_client)
    api.create_namespaced_deployment(NS, deployment("granite", labels={"keep": "yes"}))
    patch = {"metadata": {"labels": {"new": "1"}},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "vllm", "image": "vllm/vllm-openai:v2",
                  "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"},
                          {"name": "A", "$patch": "delete"}]},
                 {"name": "sidecar", "$patch": "delete"}]}}}}
    api.patch_namespaced_deployment("granite", NS, patch,
                                    _content_type="application/strategic-merge-patch+json")
    after = read(kube_client, "granite")
    assert after["metadata"]["labels"] == {"keep": "yes", "new": "1"}
    assert list(containers(after)) == ["vllm"]
    assert containers(after)["vllm"]["image"] == "vllm/vllm-openai:v2"
    assert containers(after)["vllm"]["env"] == [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]


def test_json_merge_patch_replaces_lists_and_null_removes_a_key(kube_client) -> None:
    api = apps(kube_client)
    api.create_namespaced_deployment(NS, deployment("granite", labels={"drop": "me", "keep": "yes"}))
    patch = {"metadata": {"labels": {"drop": None}},
             "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}}
    api.patch_namespaced_deployment("granite", NS, patch, _content_type="application/merge-patch+json")
    after = read(kube_client, "granite")
    assert after["metadata"]["labels"] == {"keep": "yes"}
    assert containers(after) == {"only": {"name": "only", "image": "x"}}


def test_json_patch_applies_its_operations_in_order(kube_client) -> None:
    api = apps(kube_client)
    api.create_namespaced_deployment(NS, deployment("granite", replicas=2))
    operations = [{"op": "test", "path": "/spec/replicas", "value": 2},
                  {"op": "replace", "path": "/spec/replicas", "value": 5},
                  {"op": "add", "path": "/metadata/labels/inferno.server~1x", "value": "y"},
                  {"op": "remove", "path": "/spec/template/spec/containers/1"},
                  {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"}]
    api.patch_namespaced_deployment("granite", NS, operations, _content_type="application/json-patch+json")
    after = read(kube_client, "granite")
    assert after["spec"]["replicas"] == 5
    assert after["metadata"]["labels"] == after["metadata"]["annotations"] == {"inferno.server/x": "y"}
    assert list(containers(after)) == ["vllm"]


def test_a_json_patch_whose_test_fails_answers_422_and_writes_nothing(kube_client) -> None:
    api = apps(kube_client)
    before = api.create_namespaced_deployment(NS, deployment("granite", replicas=2)).metadata.resource_version
    operations = [{"op": "replace", "path": "/spec/replicas", "value": 9},
                  {"op": "test", "path": "/spec/replicas", "value": 2}]
    status, body = error_of(api.patch_namespaced_deployment, "granite", NS, operations,
                            _content_type="application/json-patch+json")
    assert (status, body["kind"], body["reason"]) == (422, "Status", "Invalid")
    assert read(kube_client, "granite")["metadata"]["resourceVersion"] == before


def test_the_scale_subresource_reports_spec_status_and_selector(kube_client, kube_server) -> None:
    apps(kube_client).create_namespaced_deployment(NS, deployment("granite", replicas=3))
    apps(kube_client).patch_namespaced_deployment_status("granite", NS, {"status": {"replicas": 2}})
    scale = apps(kube_client).read_namespaced_deployment_scale("granite", NS)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (3, 2, "app=granite")
    assert scale.metadata.resource_version == read(kube_client, "granite")["metadata"]["resourceVersion"]


def test_the_scale_subresource_patch_and_replace_set_the_deployment_replicas(kube_client) -> None:
    api = apps(kube_client)
    api.create_namespaced_deployment(NS, deployment("granite", replicas=1))
    api.patch_namespaced_deployment_scale("granite", NS, {"spec": {"replicas": 4}},
                                          _content_type="application/merge-patch+json")
    assert read(kube_client, "granite")["spec"]["replicas"] == 4
    scale = api.read_namespaced_deployment_scale("granite", NS)
    scale.spec.replicas = 0
    replaced = api.replace_namespaced_deployment_scale("granite", NS, scale)
    assert replaced.spec.replicas == 0 and read(kube_client, "granite")["spec"]["replicas"] == 0
    assert read(kube_client, "granite")["metadata"]["generation"] == 3


def test_a_replace_with_a_stale_resource_version_answers_409_conflict(kube_client) -> None:
    api = apps(kube_client)
    stale = api.create_namespaced_deployment(NS, deployment("granite"))
    api.patch_namespaced_deployment("granite", NS, {"spec": {"replicas": 2}})
    stale.spec.replicas = 7
    status, body = error_of(api.replace_namespaced_deployment, "granite", NS, stale)
    assert status == 409
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'Operation cannot be fulfilled on deployments.apps "granite": the object has been '
                               "modified; please apply your changes to the latest version and try again",
                    "reason": "Conflict", "details": {"name": "granite", "group": "apps", "kind": "deployments"},
                    "code": 409}
    assert read(kube_client, "granite")["spec"]["replicas"] == 2


@pytest.mark.parametrize("patch_call", [
    pytest.param(lambda api, v: api.patch_namespaced_deployment(
        "granite", NS, {"metadata": {"resourceVersion": v, "labels": {"x": "1"}}}), id="deployment-patch"),
    pytest.param(lambda api, v: api.patch_namespaced_deployment_scale(
        "granite", NS, {"metadata": {"resourceVersion": v}, "spec": {"replicas": 5}},
        _content_type="application/merge-patch+json"), id="scale-patch"),
])
def test_a_patch_preconditioned_on_a_stale_resource_version_answers_409(kube_client, patch_call) -> None:
    api = apps(kube_client)
    stale = api.create_namespaced_deployment(NS, deployment("granite")).metadata.resource_version
    api.patch_namespaced_deployment("granite", NS, {"spec": {"replicas": 2}})
    status, body = error_of(patch_call, api, stale)
    assert (status, body["reason"]) == (409, "Conflict")
    assert read(kube_client, "granite")["spec"]["replicas"] == 2


def test_a_missing_deployment_answers_a_404_status(kube_client) -> None:
    status, body = error_of(apps(kube_client).read_namespaced_deployment, "absent", NS)
    assert status == 404
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'deployments.apps "absent" not found', "reason": "NotFound",
                    "details": {"name": "absent", "group": "apps", "kind": "deployments"}, "code": 404}
    assert error_of(apps(kube_client).patch_namespaced_deployment_scale, "absent", NS, {"spec": {"replicas": 1}})[0] \
        == 404


@pytest.mark.parametrize(("manifest", "field", "message"), [
    pytest.param(deployment("granite", replicas=-1), "spec.replicas",
                 'Deployment.apps "granite" is invalid: spec.replicas: Invalid value: -1: '
                 "must be greater than or equal to 0", id="negative-replicas"),
    pytest.param({**deployment(""), "metadata": {}}, "metadata.name",
                 'Deployment.apps "" is invalid: metadata.name: Required value: name or generateName is required',
                 id="missing-name"),
])
def test_an_invalid_deployment_answers_a_422_status_naming_the_field(kube_client, manifest, field, message) -> None:
    status, body = error_of(apps(kube_client).create_namespaced_deployment, NS, manifest)
    assert (status, body["reason"], body["message"]) == (422, "Invalid", message)
    assert body["details"]["kind"] == "Deployment" and body["details"]["group"] == "apps"
    assert [cause["field"] for cause in body["details"]["causes"]] == [field]


def test_scaling_to_negative_replicas_answers_422_and_keeps_the_replicas(kube_client) -> None:
    apps(kube_client).create_namespaced_deployment(NS, deployment("granite", replicas=2))
    status, body = error_of(apps(kube_client).patch_namespaced_deployment_scale, "granite", NS,
                            {"spec": {"replicas": -3}}, _content_type="application/merge-patch+json")
    assert (status, body["reason"], body["details"]["kind"]) == (422, "Invalid", "Scale")
    assert read(kube_client, "granite")["spec"]["replicas"] == 2


def test_creating_a_deployment_twice_answers_409_already_exists(kube_client) -> None:
    apps(kube_client).create_namespaced_deployment(NS, deployment("granite"))
    status, body = error_of(apps(kube_client).create_namespaced_deployment, NS, deployment("granite"))
    assert (status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'deployments.apps "granite" already exists'


def test_status_is_written_only_through_the_status_subresource(kube_client) -> None:
    api = apps(kube_client)
    api.create_namespaced_deployment(NS, deployment("granite", replicas=2))
    api.patch_namespaced_deployment_status("granite", NS, {"status": {"replicas": 2, "readyReplicas": 1,
                                                                      "observedGeneration": 1}})
    api.patch_namespaced_deployment("granite", NS, {"status": {"readyReplicas": 9}})
    after = api.read_namespaced_deployment_status("granite", NS)
    assert (after.status.replicas, after.status.ready_replicas, after.status.observed_generation) == (2, 1, 1)
    assert after.metadata.generation == 1


def collect(api, events: list, stopper: watch.Watch, until: str, **kwargs) -> None:
    for event in stopper.stream(apps(api).list_namespaced_deployment, NS, timeout_seconds=10, **kwargs):
        events.append((event["type"], event["object"].metadata.name, event["object"].spec.replicas))
        if event["type"] == until:
            stopper.stop()


def test_a_watch_sees_added_modified_and_deleted_events(kube_client) -> None:
    api, events, stopper = apps(kube_client), [], watch.Watch()
    api.create_namespaced_deployment(NS, deployment("before"))
    watcher = threading.Thread(target=collect, args=(kube_client, events, stopper, "DELETED"))
    watcher.start()
    api.create_namespaced_deployment(NS, deployment("granite", labels={"w": "1"}))
    api.patch_namespaced_deployment_scale("granite", NS, {"spec": {"replicas": 3}})
    api.delete_namespaced_deployment("granite", NS)
    watcher.join(timeout=15)
    assert events == [("ADDED", "before", 1), ("ADDED", "granite", 1), ("MODIFIED", "granite", 3),
                      ("DELETED", "granite", 3)]


def test_a_watch_from_a_resource_version_replays_only_later_matching_changes(kube_client) -> None:
    api, events = apps(kube_client), []
    api.create_namespaced_deployment(NS, deployment("old", labels={"w": "1"}))
    since = api.list_namespaced_deployment(NS).metadata.resource_version
    api.create_namespaced_deployment(NS, deployment("other"))
    api.create_namespaced_deployment(NS, deployment("new", labels={"w": "1"}))
    api.delete_namespaced_deployment("new", NS)
    collect(kube_client, events, watch.Watch(), "DELETED", resource_version=since, label_selector="w=1")
    assert events == [("ADDED", "new", 1), ("DELETED", "new", 1)]


def owner(obj) -> list[dict]:
    return [{"apiVersion": obj.api_version, "kind": obj.kind, "name": obj.metadata.name, "uid": obj.metadata.uid,
             "controller": True}]


def test_deleting_a_deployment_deletes_the_replica_sets_and_pods_it_owns(kube_client) -> None:
    api, core = apps(kube_client), client.CoreV1Api(kube_client)
    kept = api.create_namespaced_deployment(NS, deployment("kept"))
    for parent in (api.create_namespaced_deployment(NS, deployment("granite")), kept):
        rs = api.create_namespaced_replica_set(NS, {
            "metadata": {"name": f"{parent.metadata.name}-rs", "ownerReferences": owner(parent)},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}}}})
        core.create_namespaced_pod(NS, {"metadata": {"name": f"{parent.metadata.name}-pod",
                                                     "ownerReferences": owner(rs)},
                                        "spec": {"containers": [{"name": "c", "image": "i"}]}})
    answer = raw(api.delete_namespaced_deployment("granite", NS, _preload_content=False))
    assert (answer["kind"], answer["status"], answer["details"]["name"]) == ("Status", "Success", "granite")
    assert [rs.metadata.name for rs in api.list_namespaced_replica_set(NS).items] == ["kept-rs"]
    assert [pod.metadata.name for pod in core.list_namespaced_pod(NS).items] == ["kept-pod"]
    assert core.read_namespaced_pod("kept-pod", NS).metadata.owner_references[0].kind == "ReplicaSet"


def test_config_maps_nodes_and_namespaces_are_served(kube_client) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "inferno-static-data"},
                                           "data": {"accelerator-data.json": "{}"}})
    core.create_node({"metadata": {"name": "node-1", "labels": {"gpu": "A100"}},
                      "status": {"allocatable": {"nvidia.com/gpu": "8", "cpu": "64"}}})
    core.create_namespace({"metadata": {"name": "empty"}})
    assert core.read_namespaced_config_map("inferno-static-data", NS).data == {"accelerator-data.json": "{}"}
    assert [cm.metadata.name for cm in core.list_config_map_for_all_namespaces().items] == ["inferno-static-data"]
    assert core.read_node("node-1").status.allocatable == {"nvidia.com/gpu": "8", "cpu": "64"}
    assert [n.metadata.name for n in core.list_node(label_selector="gpu=A100").items] == ["node-1"]
    assert {ns.metadata.name for ns in core.list_namespace().items} == {"default", NS, "empty"}


def hpa(name: str, target: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": 1, "maxReplicas": 4}}


def test_horizontal_pod_autoscalers_are_listed_per_namespace_and_across_namespaces(kube_client) -> None:
    hpas = client.AutoscalingV2Api(kube_client)
    hpas.create_namespaced_horizontal_pod_autoscaler(NS, hpa("granite", "granite"))
    hpas.create_namespaced_horizontal_pod_autoscaler("other", hpa("llama", "llama"))
    assert [h.spec.scale_target_ref.name for h in hpas.list_namespaced_horizontal_pod_autoscaler(NS).items] \
        == ["granite"]
    assert {h.metadata.name for h in hpas.list_horizontal_pod_autoscaler_for_all_namespaces().items} \
        == {"granite", "llama"}
    assert hpas.read_namespaced_horizontal_pod_autoscaler("llama", "other").spec.max_replicas == 4


def test_keda_scaled_objects_are_served_as_custom_objects(kube_client) -> None:
    custom, keda = client.CustomObjectsApi(kube_client), ("keda.sh", "v1alpha1")
    custom.create_namespaced_custom_object(*keda, NS, "scaledobjects", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "granite"},
        "spec": {"scaleTargetRef": {"name": "granite"}}})
    custom.patch_namespaced_custom_object(*keda, NS, "scaledobjects", "granite", {"spec": {"maxReplicaCount": 6}})
    got = custom.get_namespaced_custom_object(*keda, NS, "scaledobjects", "granite")
    assert got["spec"] == {"scaleTargetRef": {"name": "granite"}, "maxReplicaCount": 6}
    listed = custom.list_namespaced_custom_object(*keda, NS, "scaledobjects")
    assert [item["kind"] for item in listed["items"]] == ["ScaledObject"]
    assert len(custom.list_cluster_custom_object(*keda, "scaledobjects")["items"]) == 1


def test_discovery_lets_the_dynamic_client_find_every_served_resource(kube_client) -> None:
    resources = dynamic.DynamicClient(kube_client).resources
    for api_version, kind in [("v1", "Pod"), ("v1", "Node"), ("apps/v1", "Deployment"),
                              ("autoscaling/v2", "HorizontalPodAutoscaler"), ("keda.sh/v1alpha1", "ScaledObject")]:
        assert resources.get(api_version=api_version, kind=kind).get().kind == f"{kind}List"
    assert client.VersionApi(kube_client).get_code().major == "1"
    groups = {g.name for g in client.ApisApi(kube_client).get_api_versions().groups}
    assert groups == {"apps", "autoscaling", "keda.sh"}


def drain_namespaces(api) -> None:
    """Watch namespaces until the stream ends, however it ends."""
    try:
        list(watch.Watch().stream(client.CoreV1Api(api).list_namespace, timeout_seconds=60))
    except Exception:  # noqa: BLE001 - a server going away may cut the stream
        pass


def test_stopping_the_server_ends_its_watches_and_threads(tmp_path) -> None:


    before = set(threading.enumerate())
    server = KubeApiServer(KubeStore())
    server.start()
    api = config.new_client_from_config(config_file=write_kubeconfig(str(tmp_path / "kc"), server.url))
    watcher = threading.Thread(target=drain_namespaces, args=(api,), daemon=True)
    watcher.start()
    client.CoreV1Api(api).list_namespace()
    server.stop()
    watcher.join(timeout=5)
    api.close()
    assert not watcher.is_alive()
    assert set(threading.enumerate()) <= before


def test_strategic_merge_patch_of_a_custom_object_answers_415(kube_client) -> None:
    custom, keda = client.CustomObjectsApi(kube_client), ("keda.sh", "v1alpha1")
    custom.create_namespaced_custom_object(*keda, NS, "scaledobjects", {"metadata": {"name": "granite"}, "spec": {}})
    status, body = error_of(custom.patch_namespaced_custom_object, *keda, NS, "scaledobjects", "granite", {},
                            _content_type="application/strategic-merge-patch+json")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


def test_status_and_owned_objects_written_through_the_store_are_what_the_client_reads(kube_client, kube_store) -> None:
    created = apps(kube_client).create_namespaced_deployment(NS, deployment("granite", replicas=2))
    kube_store.update_status("apps/v1", "deployments", NS, "granite",
                             {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1})
    kube_store.create("v1", "pods", NS, {"metadata": {"name": "granite-0", "labels": {"app": "granite"},
                                                      "ownerReferences": owner(created)}})
    after = apps(kube_client).read_namespaced_deployment("granite", NS)
    assert (after.status.ready_replicas, after.metadata.generation) == (2, 1)
    assert int(after.metadata.resource_version) > int(created.metadata.resource_version)
    pods = client.CoreV1Api(kube_client).list_namespaced_pod(NS, label_selector="app=granite").items
    assert [(p.metadata.name, p.status.phase) for p in pods] == [("granite-0", "Pending")]


def test_a_selective_watch_sees_an_object_leave_and_join_its_selection(kube_client) -> None:
    api, events, stopper = apps(kube_client), [], watch.Watch()
    api.create_namespaced_deployment(NS, deployment("granite", labels={"w": "1"}))
    since = api.list_namespaced_deployment(NS).metadata.resource_version
    api.patch_namespaced_deployment("granite", NS, {"metadata": {"labels": {"w": "0"}}})
    api.patch_namespaced_deployment("granite", NS, {"spec": {"replicas": 2}})
    api.patch_namespaced_deployment("granite", NS, {"metadata": {"labels": {"w": "1"}}})
    api.delete_namespaced_deployment("granite", NS)
    for event in stopper.stream(api.list_namespaced_deployment, NS, resource_version=since, label_selector="w=1",
                                timeout_seconds=10):
        events.append((event["type"], event["object"].metadata.labels["w"], event["object"].spec.replicas))
        if len(events) == 3:
            stopper.stop()
    assert events == [("DELETED", "1", 1), ("ADDED", "1", 2), ("DELETED", "1", 2)]
