"""Scale-down stabilization: the highest desired count of the window holds a scale-down, never a scale-up."""

from __future__ import annotations

import pytest

from services.actuator import plan as p
from services.actuator.stabilize import ScaleDownWindow


def test_the_window_remembers_the_highest_desired_count_for_its_length_only() -> None:
    window = ScaleDownWindow(300)
    assert window.highest("a", now_s=0, current=1) == 1
    window.record("a", 4, now_s=0)
    window.record("a", 2, now_s=100)
    window.record("b", 9, now_s=100)
    assert window.highest("a", now_s=250, current=2) == 4
    assert window.highest("a", now_s=301, current=2) == 2  # what t=0 recorded has left the window
    assert window.highest("a", now_s=401, current=2) == 0
    assert window.highest("b", now_s=250, current=1) == 9


def test_a_deployment_seen_first_enters_the_window_with_its_current_replicas() -> None:
    window = ScaleDownWindow(300)  # e.g. just after an actuator restart
    assert window.highest("a", now_s=1000, current=5) == 5
    window.record("a", 2, now_s=1000)
    assert window.highest("a", now_s=1200, current=5) == 5
    assert window.highest("a", now_s=1301, current=5) == 0  # both entries of t=1000 are older than 300 s
    window.forget("a")
    assert window.highest("a", now_s=1302, current=3) == 3


def test_a_zero_window_remembers_nothing() -> None:
    window = ScaleDownWindow(0)
    window.record("a", 4, now_s=0)
    assert window.highest("a", now_s=0, current=6) == 0


@pytest.mark.parametrize(("allocated", "current", "hold_at", "max_change", "target"), [
    pytest.param(1, 4, 3, 0, 3, id="scale_down_stops_at_the_window_high"),
    pytest.param(1, 2, 5, 0, 2, id="window_high_above_current_keeps_current_never_scales_up"),
    pytest.param(1, 4, 1, 0, 1, id="window_high_equal_to_desired_lets_it_go"),
    pytest.param(6, 4, 2, 0, 6, id="scale_up_is_never_delayed"),
    pytest.param(1, 8, 6, 1, 7, id="per_cycle_limit_applies_after_the_window"),
    pytest.param(1, 4, 0, 0, 1, id="no_history_no_hold"),
])
def test_target_replicas_with_a_stabilization_window(allocated, current, hold_at, max_change, target) -> None:
    desired, got, notes = p.target_replicas(allocated, 1, current, max_change, hold_at)
    assert (desired, got) == (allocated, target)
    assert any("stabilization window" in n for n in notes) == (allocated < current and hold_at > allocated)


def test_a_dry_run_reads_the_window_without_changing_it() -> None:
    window = ScaleDownWindow(300)
    assert window.highest("a", now_s=0, current=5, remember=False) == 5  # first sight: current replicas
    window.record("a", 2, now_s=0)
    assert window.highest("a", now_s=10, current=2) == 2, "the dry run's first sight left nothing behind"
    window.record("a", 3, now_s=10)
    assert window.highest("a", now_s=305, current=3, remember=False) == 3
    assert window.highest("a", now_s=305, current=3) == 3
