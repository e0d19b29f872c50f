"""End to end: the four services as processes over gRPC, the emulated cluster, Prometheus and load.

Tests run in file order on one stack: the load step first (it needs the fresh cluster), then the faults;
each fault test states its own preconditions. Prometheus is stopped by the last test.
"""

from __future__ import annotations

import datetime
import threading
import time

import pytest
import yaml

from harness.scenario import MANIFESTS, NAMESPACE
from services.core import labels as contract
from tests.e2e.conftest import E2E_SCENARIO

pytestmark = pytest.mark.e2e

STEPPED = E2E_SCENARIO.stepped


def _rows(record: dict) -> dict[str, dict]:
    return {row["server"]: row for row in record["rows"]}


def _deployments(stack) -> dict[str, tuple]:
    """What the actuator could write, per server: spec.replicas and the labels."""
    return {s.name: (stack.deployment(s.name)["spec"]["replicas"], stack.deployment(s.name)["metadata"]["labels"])
            for s in stack.scenario.servers}


def _wait_load_time(stack, t_s: float) -> None:
    time.sleep(max(t_s - stack.cluster.load.elapsed_s, 0.0))


def test_load_step_raises_only_the_loaded_servers_replicas_and_predictions_meet_slos(stack):
    _wait_load_time(stack, E2E_SCENARIO.step_at_s + E2E_SCENARIO.window_s + 3.0)
    before = stack.replicas()
    assert before == {s.name: 1 for s in E2E_SCENARIO.servers}

    status, record = stack.services.invoke()

    assert status == 200 and record["outcome"] == "applied", record
    after, rows = stack.replicas(), _rows(record)
    assert after[STEPPED] == 2 and rows[STEPPED]["action"] == "changed"
    assert {name: n for name, n in after.items() if name != STEPPED} == \
        {name: n for name, n in before.items() if name != STEPPED}
    for name, row in rows.items():
        assert row["load_source"] == "prometheus", name
        assert 0 < row["predicted_itl_ms"] <= row["slo_itl_ms"], name
        assert 0 < row["predicted_ttft_ms"] <= row["slo_ttft_ms"], name
        assert not row["saturated"], name
    assert rows[STEPPED]["arrival_rate_rpm"] > 2 * E2E_SCENARIO.server(STEPPED).base_rps * 60
    assert stack.cluster.reconciler.wait_ready(NAMESPACE, E2E_SCENARIO.server(STEPPED).deployment, 2, 30.0)


def test_the_servers_are_the_sample_deployments_and_new_replicas_run_their_pod_template(stack):
    for server in E2E_SCENARIO.servers:
        with open(f"{MANIFESTS}/{server.deployment}.yaml") as handle:
            sample = yaml.safe_load(handle)
        deployment = stack.deployment(server.name)
        assert deployment["spec"]["selector"] == sample["spec"]["selector"], server.name
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        expected = dict(sample["spec"]["template"]["spec"]["containers"][0])
        # the emulator writes the emulated batch limit into the sample's vLLM args (the actuator reads it there)
        seqs = [a for a in container["args"] if a.startswith("--max-num-seqs=")]
        assert len(seqs) == 1, server.name
        expected["args"] = [a for a in expected["args"] if not a.startswith("--max-num-seqs")] + seqs
        assert container == expected, server.name
        pods = stack.cluster.store.list("v1", "pods", NAMESPACE,
                                        label_selector=f"app.kubernetes.io/name={server.deployment}")
        assert len(pods) == deployment["spec"]["replicas"] and pods, server.name
        for pod in pods:
            assert pod["spec"]["containers"][0]["image"] == container["image"], server.name
            assert pod["spec"]["containers"][0]["args"] == container["args"], server.name
            assert pod["metadata"]["labels"][contract.NAME] == server.name, server.name
    stepped = stack.deployment(STEPPED)["metadata"]["labels"]
    assert stepped[contract.ACCELERATOR] == "G2"
    # the batch is a decision of the exact solver's batch search, never above the pod's --max-num-seqs
    assert 1 <= int(stepped[contract.MAX_BATCH]) <= E2E_SCENARIO.server(STEPPED).max_batch


def test_killed_optimizer_skips_the_cycle_naming_it_and_the_next_cycle_after_restart_applies(stack):
    stack.services.kill("optimizer")
    unchanged = _deployments(stack)

    status, record = stack.services.invoke()

    assert status == 503 and record["outcome"] == "skipped"
    assert record["skip_reason"].startswith("optimizer failed: UNAVAILABLE"), record["skip_reason"]
    assert "actuate" not in record["timings_ms"]
    assert _deployments(stack) == unchanged
    stack.services.start_one("optimizer")
    stack.services.wait_ready(30.0)
    status, record = stack.services.invoke()
    assert status == 200 and record["outcome"] == "applied", record


def test_concurrent_invokes_run_one_at_a_time_and_never_interleave_patches(stack):
    deployment = E2E_SCENARIO.server(STEPPED).deployment
    current = stack.replicas()[STEPPED]
    stack.cluster.store.patch("apps/v1", "deployments", NAMESPACE, deployment, {"spec": {"replicas": current + 3}},
                              "merge")
    writes: list[tuple[float, str]] = []

    def on_write(event_type, api_version, plural, obj, previous):
        if plural == "deployments" and previous is not None and (
                obj["spec"] != previous["spec"] or obj["metadata"].get("labels") != previous["metadata"].get("labels")):
            writes.append((time.time(), obj["metadata"]["name"]))

    unsubscribe = stack.cluster.store.subscribe(on_write, previous=True)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def call():
        answer = stack.services.invoke(timeout_s=300)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=call) for _ in range(10)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        unsubscribe()

    assert len(answers) == 10 and all(status == 200 for status, _ in answers), answers
    records = sorted((record for _, record in answers), key=lambda r: r["cycle_id"])
    ids = [r["cycle_id"] for r in records]
    assert ids == list(range(ids[0], ids[0] + 10))
    spans = []
    for record in records:
        start = datetime.datetime.fromisoformat(record["started_at"]).timestamp()
        spans.append((start, start + record["timings_ms"]["total"] / 1000.0))
    assert all(earlier[1] <= later[0] + 0.002 for earlier, later in zip(spans, spans[1:], strict=False)), spans
    # three cycles each take one replica away (INFERNO_MAX_REPLICA_CHANGE=1), one patch per cycle
    changed = [r for r in records if _rows(r)[STEPPED].get("action") == "changed"]
    assert [(_rows(r)[STEPPED]["replicas_from"], _rows(r)[STEPPED]["replicas_to"]) for r in changed] == \
        [(current + 3, current + 2), (current + 2, current + 1), (current + 1, current)]
    assert [name for _, name in writes] == [deployment] * 3
    # each patch lands inside the cycle that reports it (started_at has millisecond resolution: 2 ms of
    # slack; back-to-back cycles can be closer than that, so the slack alone cannot tell neighbours apart)
    for (when, _), record in zip(writes, changed, strict=True):
        start, end = spans[records.index(record)]
        assert start - 0.002 <= when <= end + 0.002, (when, record["cycle_id"], spans)
    assert stack.replicas()[STEPPED] == current


def test_prometheus_stopped_the_cycle_runs_on_label_fallback_and_says_so(stack):
    if stack.cluster.prometheus is None:
        pytest.fail("this test needs Prometheus (Debian package prometheus); .ci/run installs it")
    stack.cluster.prometheus.stop()
    unchanged = stack.replicas()

    status, record = stack.services.invoke()

    assert status == 200 and record["outcome"] == "applied", record
    rows = _rows(record)
    assert {row["load_source"] for row in rows.values()} == {"labels"}
    assert any("prometheus" in warning.lower() for warning in record["warnings"]), record["warnings"]
    for server in E2E_SCENARIO.servers:
        assert rows[server.name]["arrival_rate_rpm"] == pytest.approx(server.base_rps * 60)
    # the label load is the base load, which wants one replica: without a measured load nothing scales down
    assert stack.replicas() == unchanged
    if unchanged[STEPPED] > 1:
        assert "held: load not measured" in rows[STEPPED]["action_reason"], rows[STEPPED]
