"""A pool end to end in the local cluster (docs/contract.md s10): the qos answer is applied by the pool actuator
through the official client (replicas by the scale subresource, routing weights as an annotation), and the
emulator's router then sends each class where the weights say, to replicas running priority scheduling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from emulator.cluster import Cluster
from services.actuator.poolplan import plan_from_answer
from services.actuator.pools import PoolActuator, main
from services.core import routing
from services.core.errors import InvalidInputError
from services.optimizer.cli import main as optimizer_main
from services.runtime.kube import load_api_client

REPO = Path(__file__).resolve().parents[2]
SEED000 = REPO / "samples" / "qos" / "seed-000"


def _answers(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert optimizer_main(["qos", "--instances", str(SEED000 / "instances.json"), "--updates",
                           str(SEED000 / "updates.json"), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_plan_sums_each_class_per_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    answers = _answers(capsys)
    plan = plan_from_answer("llm", "llama", answers[1], {"mode2": "llama-g2"})
    assert plan.replicas == {"llama-g2": 3}
    assert [(c.name, c.priority, c.rpm) for c in plan.table.classes] == [
        ("Alan", 0, {"llama-g2": pytest.approx(15)}), ("Noel", 1, {"llama-g2": pytest.approx(21)})]
    with pytest.raises(InvalidInputError, match="qos --json"):
        plan_from_answer("llm", "llama", {"replicas": {}}, {})


@pytest.mark.slow
def test_a_pool_in_the_cluster_scaled_and_routed_by_the_applied_answer(capsys: pytest.CaptureFixture[str],
                                                                      tmp_path: Path) -> None:
    perf = {"alpha": 2, "beta": 0.01, "gamma": 0.0001}
    config = {
        "startup_delay_s": 0.1, "prometheus": False, "namespaces": ["llm"],
        "deployments": [{"name": name, "namespace": "llm", "model": "llama", "replicas": 1, "perf": perf,
                         "scheduling_policy": "priority"} for name in ("llama-a", "llama-b")],
        "pools": [{"name": "llama", "namespace": "llm", "deployments": ["llama-a", "llama-b"],
                   "classes": ["Alan", "Noel"]}],
        "loads": [{"pool": "llama", "namespace": "llm", "class": "Alan", "priority": 0, "in_tokens": 8,
                   "out_tokens": 2, "phases": [{"rate_rps": 8, "duration_s": 2}]},
                  {"pool": "llama", "namespace": "llm", "class": "Noel", "priority": 1, "in_tokens": 8,
                   "out_tokens": 2, "phases": [{"rate_rps": 8, "duration_s": 2}]}],
    }
    # two instance types, one per Deployment: Alan only on llama-a, Noel only on llama-b
    answer = [{"classes": ["Alan", "Noel"], "replicas": {"llama-a": 2, "llama-b": 1},
               "instance_types": ["llama-a", "llama-a", "llama-b"],
               "rates_rpm": [[5.0, 0.0], [5.0, 0.0], [0.0, 14.0]]}]
    (tmp_path / "answer.json").write_text(json.dumps(answer))
    with Cluster(config) as cluster:
        api = load_api_client(cluster.kubeconfig_path)
        try:
            with pytest.raises(InvalidInputError, match="inferno.server.pool"):  # not a member of that pool
                PoolActuator(api).apply(plan_from_answer("llm", "other", answer[0], {}))
            swapped = {**answer[0], "classes": ["Noel", "Alan"]}
            with pytest.raises(InvalidInputError, match="inferno.server.classes"):
                PoolActuator(api).apply(plan_from_answer("llm", "llama", swapped, {}))
            lines = PoolActuator(api).apply(plan_from_answer("llm", "llama", answer[0], {}), dry_run=True)
            assert lines[0].startswith("llm/llama-a: would set replicas 1 -> 2")
            assert cluster.store.get("apps/v1", "deployments", "llm", "llama-a")["spec"]["replicas"] == 1
        finally:
            api.close()
        assert main(["--namespace", "llm", "--pool", "llama", "--answer", str(tmp_path / "answer.json"),
                     "--kubeconfig", cluster.kubeconfig_path]) == 0
        assert "llm/llama-a: set replicas 1 -> 2" in capsys.readouterr().out
        obj = cluster.store.get("apps/v1", "deployments", "llm", "llama-a")
        assert obj["spec"]["replicas"] == 2
        assert routing.parse(obj["metadata"]["annotations"][routing.ANNOTATION]).of("Alan").rpm == {"llama-a": 10.0}
        assert cluster.reconciler.wait_ready("llm", "llama-a", 2, 20)
        reports = cluster.start_load().wait()
        assert all(r["completed"] == r["sent"] > 5 for r in reports.values())
        served = {}
        for name in ("llama-a", "llama-b"):
            served[name] = sum(
                float(v) for url in cluster.endpoints("llm", name)
                for v in re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)$",
                                    requests.get(url + "/metrics", timeout=5).text, flags=re.M))
        assert served == {"llama-a": reports["llm/llama/Alan"]["completed"],
                          "llama-b": reports["llm/llama/Noel"]["completed"]}
        assert len(cluster.endpoints("llm", "llama-a")) == 2
