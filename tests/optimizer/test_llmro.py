"""The LLM-RO reference port (docs/model.md s10): the generator matches the reference draw for draw, and the
`robust` command reproduces the published objectives with OR-Tools (HiGHS, SCIP)."""

from __future__ import annotations

import json

import pytest

from services.optimizer.cli import main
from services.optimizer.llmro_instance import generate
from services.optimizer.llmro_model import solve_llmro


def _robust(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["robust", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_generator_matches_the_reference_checksums_at_seed_42() -> None:
    sums = generate(42).checksums()
    assert sums["delay_ms"] == pytest.approx(462.05528, rel=1e-7)
    assert sums["delay_dev_ms"] == pytest.approx(77.958865, rel=1e-7)
    assert sums["error"] == pytest.approx(13.059795, rel=1e-7)
    assert sums["error_dev"] == pytest.approx(2.3486016, rel=1e-7)
    inst = generate(42)
    assert inst.arrival_per_h == (118, 88, 114, 47, 40, 16)
    assert generate(7).checksums() != sums  # the seed matters


def test_default_instance_solves_to_553_4433_with_19_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    out = _robust(capsys, "--instance", "llmro-default")
    assert out["status"] == "OPTIMAL" and out["gamma"] == 50
    assert out["objective"] == pytest.approx(553.4433, rel=1e-4)
    assert out["gpus"] == 19
    assert out["breakdown"]["rental"] == pytest.approx(489.7836, rel=1e-4)
    assert out["breakdown"]["storage"] == pytest.approx(45.6747, rel=1e-4)
    assert out["breakdown"]["delay_deviation_penalty"] == pytest.approx(17.9850, rel=1e-4)
    assert out["breakdown"]["unmet_penalty"] == pytest.approx(0, abs=1e-6)
    assert sum(out["breakdown"].values()) == pytest.approx(out["objective"], rel=1e-9)
    assert out["solve_s"] > 0
    # The compat right-hand side forces 11B-Vision on H100_INT8 into the answer (docs/model.md s10).
    assert {"model": "Llama-3.2-11B-Vision", "tier": "H100_80GB_INT8", "tp": 1, "gpus": 1} in out["deployments"]
    routed = {}
    for route in out["routing"]:
        routed[route["query_type"]] = routed.get(route["query_type"], 0) + route["fraction"]
    assert all(routed[q] == pytest.approx(1 - out["unmet"].get(q, 0), abs=1e-6) for q in generate().query_types)


@pytest.mark.parametrize(("gamma", "objective"), [(0, 429.6071), (0.25, 442.3604), (0.5, 455.1137), (1, 553.4433)])
def test_gamma_sweep_reproduces_the_reference(capsys: pytest.CaptureFixture[str], gamma: float,
                                              objective: float) -> None:
    out = _robust(capsys, "--gamma", str(gamma))
    assert out["objective"] == pytest.approx(objective, rel=1e-4)
    assert out["gamma"] == gamma


def test_fixed_right_hand_side_solves_to_529_4340_with_18_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    out = _robust(capsys, "--fixed")
    assert out["mode"] == "fixed"
    assert out["objective"] == pytest.approx(529.4340, rel=1e-4)
    assert out["gpus"] == 18
    assert not any(d["model"] == "Llama-3.2-11B-Vision" for d in out["deployments"])


def test_scip_agrees_with_highs() -> None:
    inst = generate()
    assert solve_llmro(inst, solver="scip").objective == pytest.approx(553.4433, rel=1e-4)


def test_deterministic_variant_serves_everything_and_charges_the_nominal_delay() -> None:
    result = solve_llmro(generate(), deterministic=True)
    assert result.unmet == {}
    assert set(result.breakdown) == {"rental", "storage", "delay_penalty", "unmet_penalty"}
    assert result.breakdown["delay_penalty"] > 0
    assert sum(result.breakdown.values()) == pytest.approx(result.objective, rel=1e-9)


def test_written_instance_reads_back_to_the_same_answer(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    path = tmp_path / "inst.json"
    first = _robust(capsys, "--gamma", "0.5", "--write-instance", str(path))
    data = json.loads(path.read_text())
    assert data["gamma"] == 0.5 and len(data["delay_ms"]) == 6
    again = _robust(capsys, "--instance", str(path))
    assert again["objective"] == pytest.approx(first["objective"], rel=1e-9)
    assert again["gamma"] == 0.5


def test_text_report_has_the_breakdown_gpus_by_tier_and_routing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robust"]) == 0
    out = capsys.readouterr().out
    for text in ("objective:", "553.4433", "rental:", "storage:", "delay-deviation penalty:", "unmet penalty:",
                 "GPUs: 19", "H100_80GB_INT8   all    11", "Summarization", "-> Llama-3.2-3B on H100_80GB_FP16",
                 "OPTIMAL in"):
        assert text in out, text


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("budget"), "missing keys: budget"),
    (lambda d: d.update(extra=1), "unknown keys: extra"),
    (lambda d: d["arrival_per_h"].__setitem__(2, -5), "arrival_per_h[2]"),
    (lambda d: d["delay_ms"][1].pop(), "delay_ms[1]"),
    (lambda d: d.update(tp_degrees=[1, 0]), "tp_degrees"),
])
def test_bad_instance_file_exits_1_naming_the_field(capsys: pytest.CaptureFixture[str], tmp_path, edit,
                                                    message: str) -> None:
    data = json.loads(generate().to_json())
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert main(["robust", "--instance", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_bad_gamma_and_missing_file_exit_1(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["robust", "--gamma", "-1"]) == 1
    assert "--gamma" in capsys.readouterr().err
    assert main(["robust", "--instance", str(tmp_path / "none.json")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_an_instance_file_that_is_not_utf8_or_nested_too_deeply_exits_1_naming_it(
        capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    for body, reason in ((b'{"x": "\xff"}', "not UTF-8 text"), (b"[" * 5000 + b"]" * 5000, "nested too deeply")):
        path = tmp_path / "bad.json"
        path.write_bytes(body)
        assert main(["robust", "--instance", str(path)]) == 1
        err = capsys.readouterr().err
        assert "bad.json" in err and reason in err
