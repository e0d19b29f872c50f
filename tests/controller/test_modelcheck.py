"""The model-vs-reality check: a warning after several disagreeing cycles, an Event when it starts, cleared
by agreement; figures from the load labels never count."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.controller.cycle import run_cycle
from services.controller.modelcheck import CYCLES, ModelChecker, notices
from services.core import model as m
from tests.controller.fakes import CAPACITY, MANAGED, SERVER, STATIC, FakeClients

PREDICTION = m.Prediction("Premium-llama_13b", "G2", 1, 608, itl_ms=18.0, ttft_ms=40.0)


def observed(itl_ms: float | None, ttft_ms: float | None, source: str = "prometheus") -> m.Server:
    return replace(SERVER, observed=m.ObservedMetrics(itl_ms=itl_ms, ttft_ms=ttft_ms, source=source))


def run(checker: ModelChecker, server: m.Server, times: int = 1):
    return [checker.check([server], {server.name: PREDICTION})[server.name] for _ in range(times)][-1]


def test_a_disagreement_warns_only_after_several_cycles_and_starts_once() -> None:
    checker = ModelChecker()
    far = observed(20.0, 2500.0)  # the scenario: 2.5 s observed, 40 ms predicted
    checks = [checker.check([far], {far.name: PREDICTION})[far.name] for _ in range(CYCLES + 2)]
    assert [c.mismatch for c in checks] == [False] * (CYCLES - 1) + [True] * 3
    assert [c.starts for c in checks] == [False] * (CYCLES - 1) + [True, False, False]
    assert checks[-1].ttft_ratio == pytest.approx(62.5)
    warning = checks[-1].warning
    assert "TTFT observed 2,500 ms vs predicted 40 ms" in warning and "batch 608" in warning
    assert "1 x G2" in warning


def test_one_agreeing_cycle_clears_the_warning() -> None:
    checker = ModelChecker()
    run(checker, observed(20.0, 2500.0), CYCLES)
    assert not run(checker, observed(19.0, 45.0)).mismatch
    assert run(checker, observed(20.0, 2500.0)).disagreeing_cycles == 1


@pytest.mark.parametrize(("itl", "ttft", "source", "counts"), [
    pytest.param(19.0, 70.0, "prometheus", False, id="within-a-factor-of-two"),
    pytest.param(8.5, 40.0, "prometheus", False, id="itl-off-by-2.1x-but-under-the-10-ms-floor"),
    pytest.param(20.0, 2500.0, "labels", False, id="load-labels-are-not-a-measurement"),
    pytest.param(None, None, "prometheus", False, id="no-figures"),
    pytest.param(60.0, 40.0, "direct_scrape", True, id="itl-3x"),
    pytest.param(18.0, 10.0, "prometheus", False, id="ttft-4x-low-but-under-the-floor"),
])
def test_what_counts_as_a_disagreement(itl, ttft, source, counts) -> None:
    assert (run(ModelChecker(), observed(itl, ttft, source)).disagreeing_cycles == 1) is counts


def test_a_cycle_without_figures_keeps_the_count_and_a_vanished_server_is_forgotten() -> None:
    checker = ModelChecker()
    run(checker, observed(20.0, 2500.0), 2)
    assert run(checker, observed(None, None)).disagreeing_cycles == 2
    checker.check([], {})
    assert run(checker, observed(20.0, 2500.0)).disagreeing_cycles == 1


def test_the_cycle_records_the_warning_the_row_and_sends_the_event_once() -> None:
    far = replace(MANAGED, server=observed(20.0, 2500.0))
    clients = FakeClients(collection=m.Collection((far,)), current={far.name: PREDICTION})
    checker = ModelChecker()
    records = [run_cycle(i, "t", lambda: (STATIC, CAPACITY), clients, lambda: 0.0, checker=checker)
               for i in range(1, CYCLES + 2)]
    assert [bool(r.warnings) for r in records] == [False] * (CYCLES - 1) + [True, True]
    assert "the model disagrees with what the server shows" in records[-1].warnings[0]
    row = records[-1].rows[0]
    assert row.model_mismatch is True and row.model_ttft_ratio == pytest.approx(62.5)
    assert row.current_predicted_ttft_ms == 40.0
    sent = [n for batch in clients.notices for n in batch]
    assert [(n.server_name, n.type, n.reason) for n in sent] == [(far.name, "Warning", "ModelMismatch")]
    assert notices({}) == []


def test_the_warning_shows_the_batch_the_server_really_runs_when_measured() -> None:
    far = replace(SERVER, observed=m.ObservedMetrics(itl_ms=20.0, ttft_ms=2500.0, requests_running=2.0,
                                                     requests_waiting=6.5, source="prometheus"))
    warning = run(ModelChecker(), far, CYCLES).warning
    assert "with batch 608 (the server runs 2.0 requests with 6.5 waiting)" in warning
