"""The inferno Deployment and Service: entry points, ports, probes, settings (one ConfigMap), security, volumes."""

from __future__ import annotations

import pytest

from services.runtime.config import VARIABLES, load_config
from tests.manifests.conftest import BASE, REPO, environment, find, settings_of

SERVICES = ("controller", "collector", "optimizer", "actuator")
GRPC_PORTS = {"collector": 3301, "optimizer": 3302, "actuator": 3303}
HEALTH_PORTS = {"collector": 3311, "optimizer": 3312, "actuator": 3313}
API_CALLERS = {"collector", "actuator"}
"""The containers that call the Kubernetes API (services/collector/rbac.py, services/actuator/rbac.py)."""
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def env(base_objects, deployment):
    """Container name -> the environment it starts with (shared settings, then its own overrides)."""
    return {c["name"]: environment(base_objects, deployment, c)
            for c in deployment["spec"]["template"]["spec"]["containers"]}


def _ports(container: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def test_the_pod_runs_the_four_services_each_from_its_entry_point(containers):
    assert set(containers) == set(SERVICES)
    for name, container in containers.items():
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert (REPO / "services" / name / "__main__.py").is_file()


def test_one_settings_configmap_sets_exactly_the_variables_config_reads(base_objects, deployment):
    assert set(settings_of(base_objects, deployment)) == set(VARIABLES)


def test_the_settings_file_names_each_variable_once():
    names = [line.split("=", 1)[0] for line in (BASE / "settings.env").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(names) == len(set(names)) and set(names) == set(VARIABLES)


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_reads_the_shared_settings_with_env_from(containers, name):
    assert containers[name]["envFrom"] == [{"configMapRef": {"name": containers["controller"]["envFrom"][0]
                                                             ["configMapRef"]["name"]}}]


@pytest.mark.parametrize("name", SERVICES)
def test_a_container_overrides_only_known_settings_and_only_with_another_value(base_objects, deployment,
                                                                                containers, name):
    shared = settings_of(base_objects, deployment)
    overrides = containers[name].get("env", [])
    names = [e["name"] for e in overrides]
    assert len(names) == len(set(names)), "a variable is overridden twice"
    for entry in overrides:
        assert set(entry) == {"name", "value"}, f"{entry['name']}: set it explicitly with value"
        assert entry["name"] in VARIABLES, f"{entry['name']} is not a setting"
        assert entry["value"] != shared[entry["name"]], f"{entry['name']}: same as the shared setting"


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_environment_is_a_valid_config(env, name):
    load_config(env[name])


def test_the_ports_and_addresses_in_the_environment_match_the_container_ports(containers, env):
    config = load_config(env["controller"])
    assert _ports(containers["controller"]) == {"http": config.controller_port}
    assert list(_ports(containers["collector"]).values()) == [config.collector_health_port]
    assert list(_ports(containers["optimizer"]).values()) == [config.optimizer_health_port]
    assert sorted(_ports(containers["actuator"]).values()) == [config.actuator_metrics_port,
                                                               config.actuator_health_port]
    assert _ports(containers["actuator"])["metrics"] == config.actuator_metrics_port
    addresses = {"collector": config.collector_address, "optimizer": config.optimizer_address,
                 "actuator": config.actuator_address}
    ports = {"collector": config.collector_port, "optimizer": config.optimizer_port, "actuator": config.actuator_port}
    for name, address in addresses.items():
        assert address == f"127.0.0.1:{GRPC_PORTS[name]}" == f"127.0.0.1:{ports[name]}"
        assert GRPC_PORTS[name] not in _ports(containers[name]).values(), "the gRPC port is loopback only"


def test_the_grpc_services_bind_the_pods_loopback_and_only_http_and_health_the_pod_ip(env):
    for name in SERVICES:
        config = load_config(env[name])
        assert config.bind_address == "127.0.0.1", "unauthenticated gRPC: the containers share the loopback"
        assert config.http_bind_address == "0.0.0.0", "the kubelet and the Service reach the pod IP"
        assert (config.collector_health_port, config.optimizer_health_port,
                config.actuator_health_port) == tuple(HEALTH_PORTS.values())


@pytest.mark.parametrize("name", list(GRPC_PORTS))
def test_grpc_services_have_grpc_readiness_and_liveness_probes_on_their_health_port(containers, name):
    for probe in ("readinessProbe", "livenessProbe"):
        assert containers[name][probe]["grpc"]["port"] == HEALTH_PORTS[name]


def test_the_service_account_token_is_mounted_only_in_the_containers_that_call_the_api(deployment, containers):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    for name, container in containers.items():
        mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == TOKEN_DIR), None)
        assert (mount is not None) == (name in API_CALLERS), name
        if mount is not None:
            assert mount["readOnly"] is True
            sources = _volumes(deployment)[mount["name"]]["projected"]["sources"]
            assert {"path": "token", "expirationSeconds": 3607} in [s.get("serviceAccountToken") for s in sources]
            assert any(s.get("configMap", {}).get("name") == "kube-root-ca.crt" for s in sources)


def test_the_invoke_token_secret_is_optional_and_mounted_only_in_the_controller(deployment, containers, env):
    volume = _volumes(deployment)["invoke-token"]
    assert volume["secret"] == {"secretName": "inferno-invoke-token", "optional": True}
    holders = [n for n, c in containers.items() if "invoke-token" in _mounts(c).values()]
    assert holders == ["controller"]
    assert env["controller"]["INFERNO_INVOKE_TOKEN_PATH"] == "", "off until the user creates the Secret"


def test_the_controller_probes_healthz_for_liveness_and_readyz_for_readiness(containers):
    controller = containers["controller"]
    assert controller["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert controller["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_has_cpu_and_memory_requests_and_limits(containers, name):
    resources = containers[name]["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_runs_locked_down(containers, name):
    context = containers[name]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_the_pod_runs_as_a_numeric_non_root_user_with_the_default_seccomp_profile(deployment):
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def _mounts(container: dict) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def _volumes(deployment: dict) -> dict[str, dict]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_reads_the_data_where_inferno_data_path_points_and_writes_only_tmp(deployment, containers,
                                                                                         env, name):
    container = containers[name]
    volumes = _volumes(deployment)
    mounts = _mounts(container)
    assert "projected" in volumes[mounts[env[name]["INFERNO_DATA_PATH"]]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    data_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == env[name]["INFERNO_DATA_PATH"])
    assert data_mount.get("readOnly") is True


def test_the_cycle_log_directory_is_a_writable_emptydir_in_the_controller(deployment, containers, env):
    controller = containers["controller"]
    log_dir = env["controller"]["INFERNO_CYCLE_LOG"].rsplit("/", 1)[0]
    mount = next(m for m in controller["volumeMounts"] if m["mountPath"] == log_dir)
    assert not mount.get("readOnly", False)
    assert "emptyDir" in _volumes(deployment)[mount["name"]]


def test_the_pod_uses_the_service_account_the_rbac_binds(base_objects, deployment):
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    binding = find(base_objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "inferno"}]
    assert find(base_objects, "ServiceAccount")["metadata"]["name"] == account


def test_the_service_sends_port_80_to_the_controller_and_exposes_the_actuator_metrics(base_objects, deployment,
                                                                                      containers):
    service = find(base_objects, "Service", "inferno")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert _ports(containers["controller"])[ports[80]] == 3300
    assert _ports(containers["actuator"])[ports[3304]] == 3304


def test_the_network_policy_admits_http_from_labelled_namespaces_and_metrics_never_grpc(base_objects, deployment,
                                                                                        containers):
    policy = find(base_objects, "NetworkPolicy", "inferno")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    named = {name: port for c in containers.values() for name, port in _ports(c).items()}
    admitted = {named[p["port"]]: rule.get("from") for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert set(admitted) == {3300, 3304}
    assert admitted[3300] == [{"namespaceSelector": {"matchLabels": {"inferno.access": "true"}}}], \
        "/invoke writes Deployments: only labelled namespaces"
    assert admitted[3304] is None, "the actuator's metrics are read-only"
    assert not set(GRPC_PORTS.values()) & set(admitted)
