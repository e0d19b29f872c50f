"""The short form of the fuzz and fault suite (the long one: make fuzz): each campaign, seeded, finds no crash,
no INTERNAL answer and no absurd result or write."""

from __future__ import annotations

import pytest

from fuzz import campaigns
from fuzz.figures import table


@pytest.mark.parametrize("target", list(campaigns.TARGETS))
def test_short_campaign_is_clean(target: str) -> None:
    figures = campaigns.TARGETS[target](7, campaigns.SHORT[target], 120.0)
    assert figures.inputs == campaigns.SHORT[target], "every input was tried"
    assert figures.clean, table([figures])


def test_the_campaigns_find_what_they_look_for(monkeypatch) -> None:
    """A crash planted in the solver is counted and reported with its seed and case, so a clean run means
    something."""
    from fuzz import datafiles

    def planted(system):
        raise ZeroDivisionError("planted")
    monkeypatch.setattr(datafiles, "solve", planted)
    figures = datafiles.run(7, 30)
    assert figures.inputs == 30 and 1 <= figures.crashes <= 30
    assert "seed 7 case" in figures.findings["crashes"][0] and "ZeroDivisionError: planted" in \
        figures.findings["crashes"][0]


def test_a_write_to_an_unmanaged_deployment_is_counted_as_absurd(monkeypatch) -> None:
    """With the actuator's verification switched off, the actuator campaign sees the writes it must not make."""
    from fuzz import grpc_actuator
    from services.actuator import kube

    monkeypatch.setattr(kube, "refusal", lambda *args: "")
    figures = grpc_actuator.run(7, 40)
    assert figures.absurd >= 1 and "seed 7 case" in figures.findings["absurd"][0]
