"""One control cycle over fake clients: applied when every phase works, skipped (nothing written) otherwise."""

from __future__ import annotations

import itertools

import pytest

from services.controller.cycle import run_cycle
from services.core import model as m
from services.core.errors import DataFileError, NoAnswerError, RefusedError
from tests.controller.fakes import CAPACITY, MANAGED, SERVER, STATIC, FakeClients


def clock():
    ticks = itertools.count()
    return lambda: next(ticks) * 0.002


def static():
    return STATIC, CAPACITY


def test_working_cycle_collects_optimizes_actuates_and_reports_the_table() -> None:
    clients = FakeClients()
    record = run_cycle(7, "2026-11-22T00:00:00Z", static, clients, clock())
    assert record.outcome == "applied" and record.skip_reason == ""
    assert clients.calls == ["collect", "optimize", "actuate"]
    assert set(record.timings_ms) == {"read_data", "collect", "optimize", "actuate", "total"}
    (row,) = record.rows
    assert row.server == "Premium-llama_13b" and row.deployment == "llama-13b"
    assert (row.replicas, row.predicted_itl_ms) == (3, 36.4)
    assert (row.slo_itl_ms, row.observed_itl_ms) == (80.0, 30.0)
    assert (row.action, row.replicas_from, row.replicas_to) == ("changed", 1, 3)
    assert record.total_cost_per_hour == 69.0


def test_the_static_data_read_by_the_cycle_goes_to_the_collector_with_the_window() -> None:
    clients = FakeClients()
    run_cycle(1, "t", static, clients, clock(), window="30s")
    assert clients.collected_with == [(STATIC, "30s")]


def test_optimizer_sees_static_data_collected_servers_and_file_capacity() -> None:
    clients = FakeClients()
    run_cycle(1, "t", static, clients, clock())
    (system,) = clients.systems
    assert system.servers == (SERVER,) and system.models == STATIC.models and system.capacity == CAPACITY


def test_capacity_from_the_collector_wins_over_the_file() -> None:
    clients = FakeClients(collection=m.Collection((MANAGED,), capacity=m.Capacity({"G2": 2})))
    run_cycle(1, "t", static, clients, clock())
    assert dict(clients.systems[0].capacity.counts) == {"G2": 2}


def Unavailable(service: str = "collector") -> RefusedError:  # noqa: N802 - reads as the error it stands for
    """What the clients raise when a service's port does not answer (never connected: nothing was done)."""
    return RefusedError(service, "UNAVAILABLE", "failed to connect to all addresses")


SKIPS = [
    pytest.param({"collect": Unavailable()}, ["collect"],
                 "collector failed: UNAVAILABLE: failed to connect to all addresses", id="collector-down"),
    pytest.param({"optimize": Unavailable()}, ["collect", "optimize"],
                 "optimizer failed: UNAVAILABLE: failed to connect to all addresses", id="optimizer-down"),
    pytest.param({"actuate": Unavailable()}, ["collect", "optimize", "actuate"],
                 "actuator failed: UNAVAILABLE", id="actuator-down"),
]


@pytest.mark.parametrize(("fail", "calls", "reason"), SKIPS)
def test_failing_service_skips_the_cycle_naming_it(fail, calls, reason) -> None:
    clients = FakeClients(fail=fail)
    record = run_cycle(1, "t", static, clients, clock())
    assert record.outcome == "skipped" and record.skip_reason.startswith(reason)
    assert clients.calls == calls


def DeadlineExceeded() -> NoAnswerError:  # noqa: N802
    """The actuator was reached but did not answer in time."""
    return NoAnswerError("actuator", "DEADLINE_EXCEEDED", "Deadline Exceeded")


def SocketClosed() -> NoAnswerError:  # noqa: N802
    """The connection to the actuator was lost during the call."""
    return NoAnswerError("actuator", "UNAVAILABLE", "Socket closed")


@pytest.mark.parametrize("error", [DeadlineExceeded(), SocketClosed(), RuntimeError("connection reset mid-call")],
                         ids=["deadline", "connection-lost-mid-call", "unknown-error"])
def test_actuator_that_does_not_answer_makes_the_cycle_unconfirmed_not_skipped(error) -> None:
    record = run_cycle(1, "t", static, FakeClients(fail={"actuate": error}), clock())
    assert record.outcome == "unconfirmed"
    assert record.skip_reason.startswith("actuator did not answer")
    assert "may have changed some Deployments" in record.skip_reason


def test_actuator_failure_in_a_dry_run_is_a_plain_skip() -> None:
    record = run_cycle(1, "t", static, FakeClients(fail={"actuate": DeadlineExceeded()}), clock(), dry_run=True)
    assert record.outcome == "skipped" and record.skip_reason.startswith("actuator failed: DEADLINE_EXCEEDED")


def test_empty_collection_skips_without_optimizing() -> None:
    clients = FakeClients(collection=m.Collection())
    record = run_cycle(1, "t", static, clients, clock())
    assert (record.outcome, record.skip_reason) == ("skipped", "collector found no managed servers")
    assert clients.calls == ["collect"]


def test_solution_without_allocations_skips_without_actuating() -> None:
    clients = FakeClients(solution=m.Solution(unallocated={"Premium-llama_13b": "no candidate meets the SLOs"}))
    record = run_cycle(1, "t", static, clients, clock())
    assert record.outcome == "skipped"
    assert record.skip_reason == (
        "optimizer found no feasible allocation: Premium-llama_13b: no candidate meets the SLOs")
    assert "actuate" not in clients.calls


def test_unreadable_data_files_skip_before_collecting() -> None:
    def broken():
        raise DataFileError("model-data.json", "$.models[0].acc", "unknown accelerator 'X'")

    clients = FakeClients()
    record = run_cycle(1, "t", broken, clients, clock())
    assert record.skip_reason == (
        "reading the data files failed: model-data.json: $.models[0].acc: unknown accelerator 'X'")
    assert clients.calls == []


def test_skipped_cycle_still_reports_what_was_collected() -> None:
    record = run_cycle(1, "t", static, FakeClients(fail={"optimize": Unavailable()}), clock())
    (row,) = record.rows
    assert row.observed_ttft_ms == 400.0 and "replicas" not in row.as_json() and "action" not in row.as_json()


def test_a_dry_run_is_reported_as_advice_with_the_same_table() -> None:
    real = run_cycle(1, "t", static, FakeClients(), clock())
    advice = run_cycle(2, "t", static, FakeClients(), clock(), dry_run=True)
    assert (real.outcome, advice.outcome) == ("applied", "advised")
    [real_row], [advised_row] = real.rows, advice.rows
    assert (real_row.action, advised_row.action) == ("changed", "would-change")
    assert advised_row.dry_run is True and real_row.dry_run is False
    assert advised_row.action_reason == real_row.action_reason == "replicas 1 -> 3"
    same = ("replicas", "accelerator", "max_batch", "predicted_itl_ms", "predicted_ttft_ms", "replicas_to")
    assert {k: getattr(advised_row, k) for k in same} == {k: getattr(real_row, k) for k in same}


class StubTuner:
    """Stands in for services.perfmodel.tuner.Tuner: reports one state, changes alpha (or raises)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.seen = error, []

    def observe(self, system):
        from services.perfmodel.tuner import TunerMode, TunerState
        self.seen.append(system)
        if self.error:
            raise self.error
        return [TunerState("llama_13b", "G2", TunerMode.ON, 20, 3.0, "adopted", estimate=m.PerfParms(9, 0.03, 0.001))]

    def apply(self, system):
        from dataclasses import replace
        return replace(system, models=tuple(replace(p, perf=m.PerfParms(9, 0.03, 0.001)) for p in system.models))


def test_the_tuner_sees_the_collected_system_and_its_parameters_reach_the_optimizer() -> None:
    clients, tuner = FakeClients(), StubTuner()
    record = run_cycle(1, "t", static, clients, clock(), tuner=tuner)
    assert record.outcome == "applied" and tuner.seen[0].servers == (SERVER,)
    assert clients.systems[0].models[0].perf == m.PerfParms(9, 0.03, 0.001)
    (state,) = record.tuner
    assert (state["status"], state["estimate"]["alpha"]) == ("adopted", 9.0)
    assert record.as_json()["tuner"] == [state]


def test_a_failing_tuner_never_stops_a_cycle() -> None:
    clients = FakeClients()
    record = run_cycle(1, "t", static, clients, clock(), tuner=StubTuner(ZeroDivisionError("boom")))
    assert record.outcome == "applied" and record.tuner == ()
    assert clients.systems[0].models == STATIC.models
    assert any("online tuner failed (ZeroDivisionError: boom)" in w for w in record.warnings)


def test_an_advisory_tuner_leaves_the_optimizer_input_as_the_data_files_say() -> None:
    from dataclasses import replace

    from services.perfmodel.tuner import GateSettings, Tuner, TunerMode
    tuner = Tuner(TunerMode.ADVISORY, GateSettings(min_samples=3, recent=1, refit_every=1, min_load_span=1.5))
    plain, tuned = FakeClients(), FakeClients()
    for rpm, itl, ttft in ((30, 20.0, 60.0), (90, 25.0, 70.0), (180, 32.0, 90.0), (60, 22.0, 65.0)):
        server = replace(SERVER, current=replace(SERVER.current, load=m.Load(rpm, 128, 1024)),
                         observed=m.ObservedMetrics(itl_ms=itl, ttft_ms=ttft, ready_replicas=1, source="prometheus"))
        for clients in (plain, tuned):
            clients.collection = m.Collection((replace(MANAGED, server=server),))
        run_cycle(1, "t", static, plain, clock())
        record = run_cycle(1, "t", static, tuned, clock(), tuner=tuner)
    assert record.tuner and record.tuner[0]["mode"] == "advisory" and record.tuner[0]["estimate"] is not None
    assert tuned.systems == plain.systems


def test_cycle_row_shows_observed_percentiles_beside_the_percentile_slos() -> None:
    from dataclasses import replace

    observed = replace(MANAGED.server.observed, ttft_ms_p90=850.0, itl_ms_p99=41.0)
    managed = replace(MANAGED, server=replace(MANAGED.server, observed=observed))
    target = m.ModelTarget("llama_13b", 80.0, 1000.0, slo_ttft_p90_ms=900.0)
    system = replace(STATIC, service_classes=(m.ServiceClass("Premium", 1, (target,)),))
    record = run_cycle(1, "t", lambda: (system, CAPACITY), FakeClients(collection=m.Collection((managed,))), clock())
    (row,) = record.rows
    assert (row.observed_ttft_ms_p90, row.slo_ttft_ms_p90, row.observed_itl_ms_p99) == (850.0, 900.0, 41.0)
    shown = row.as_json()
    assert "slo_itl_ms_p99" not in shown and "observed_ttft_ms_p50" not in shown  # only what is known or set


def test_cycle_table_compares_observed_and_predicted_percentiles_with_their_slos() -> None:
    from services.controller.report import percentiles

    row = {"slo_ttft_ms_p90": 900.0, "observed_ttft_ms_p90": 950.0, "predicted_ttft_ms_p90": 610.0,
           "slo_itl_ms_p99": 60.0, "predicted_itl_ms_p99": 41.0}
    assert percentiles(row) == "TTFT P90 950/610/900 !, ITL P99 -/41/60"
    assert percentiles({"slo_ttft_ms": 900.0}) == "-"


ALWAYS = ["server", "class", "model", "namespace", "deployment", "arrival_rate_rpm", "avg_in_tokens", "avg_out_tokens",
          "load_source", "observed_itl_ms", "observed_ttft_ms", "slo_itl_ms", "slo_ttft_ms", "current_accelerator",
          "current_replicas", "ready_replicas"]
DECIDED_KEYS = ["accelerator", "replicas", "max_batch", "cost_per_hour", "predicted_itl_ms", "predicted_ttft_ms",
                "saturated", "unserved_rate_rpm"]
ACTED_KEYS = ["action", "action_reason", "replicas_from", "replicas_to", "dry_run"]


def test_the_rows_json_keys_are_those_users_read() -> None:
    """The /invoke answer and the cycle log keep their row keys (docs/contract.md): the columns every row has,
    then the decision and the action only when there is one; an unallocated server says why."""
    applied = run_cycle(1, "t", static, FakeClients(), clock()).as_json()["rows"][0]
    assert list(applied) == ALWAYS + DECIDED_KEYS + ACTED_KEYS
    assert (applied["class"], applied["slo_ttft_ms"], applied["dry_run"]) == ("Premium", 1000.0, False)
    skipped = run_cycle(1, "t", static, FakeClients(fail={"optimize": Unavailable()}), clock()).as_json()["rows"][0]
    assert list(skipped) == ALWAYS
    unallocated = FakeClients(solution=m.Solution({"other": m.Allocation("G2", 1)}, {"Premium-llama_13b": "no fit"}))
    row = run_cycle(1, "t", static, unallocated, clock()).as_json()["rows"][0]
    assert list(row) == [*ALWAYS, "unallocated_reason"] and row["unallocated_reason"] == "no fit"
