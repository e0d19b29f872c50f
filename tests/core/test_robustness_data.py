"""The `robustness` section of optimizer-data.json (docs/model.md s10.2): off when absent, read with one default
deviation or per parameter, per (model, accelerator) overrides, bad values named, written back unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.core import datafiles
from services.core.errors import DataFileError
from services.core.model import Deviation, Robustness

SMALL = Path(__file__).resolve().parents[2] / "samples" / "inferno" / "small"


@pytest.fixture
def small_copy(tmp_path: Path) -> Path:
    target = tmp_path / "small"
    shutil.copytree(SMALL, target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


def _robustness(directory: Path, section) -> None:
    path = directory / "optimizer-data.json"
    data = json.loads(path.read_text())
    data["optimizer"]["robustness"] = section
    path.write_text(json.dumps(data))


def test_robustness_is_off_by_default() -> None:
    assert datafiles.load_system_dir(str(SMALL)).system.optimizer.robustness is None


def test_one_default_deviation_and_per_pair_overrides(small_copy: Path) -> None:
    _robustness(small_copy, {"Gamma": 1.5, "maxDeviation": 0.2, "models": [
        {"name": "llama_70b", "acc": "G2", "maxDeviation": {"alpha": 0.5}},
        {"name": "granite_13b", "acc": "L4", "maxDeviation": 0.05}]})
    loaded = datafiles.load_system_dir(str(small_copy), strict=True)
    robust = loaded.system.optimizer.robustness
    assert robust is not None and robust.gamma == 1.5 and robust.active
    assert robust.default == Deviation(0.2, 0.2, 0.2)
    assert robust.deviation("llama_70b", "G2") == Deviation(0.5, 0.2, 0.2)  # unnamed parameters: the default
    assert robust.deviation("granite_13b", "L4") == Deviation(0.05, 0.05, 0.05)
    assert robust.deviation("llama_70b", "A100") == robust.default


def test_gamma_zero_is_inactive() -> None:
    assert not Robustness(0.0, Deviation(0.3, 0.3, 0.3)).active


def test_worst_case_perf_scales_each_parameter() -> None:
    system = datafiles.load_system_dir(str(SMALL)).system
    perf = system.perf("llama_70b", "G2").perf
    worst = Deviation(0.1, 0.2, 0.5).worst(perf)
    assert (worst.alpha_ms, worst.beta_ms, worst.gamma_ms) == pytest.approx(
        (perf.alpha_ms * 1.1, perf.beta_ms * 1.2, perf.gamma_ms * 1.5))


@pytest.mark.parametrize(("section", "message"), [
    ({"gamma": -1}, "$.optimizer.robustness.gamma: expected a non-negative number, got -1"),
    ({"gamma": 1, "maxDeviation": "big"}, "$.optimizer.robustness.maxDeviation: expected a number, got 'big'"),
    ({"gamma": 1, "maxDeviation": 11}, "$.optimizer.robustness.maxDeviation: expected a number at most 10"),
    ({"gamma": 1, "maxDeviation": {"beta": -0.1}}, "$.optimizer.robustness.maxDeviation.beta: expected a non-neg"),
    ({"gamma": 1, "models": [{"name": "llama_70b", "acc": "G2"}]},
     "$.optimizer.robustness.models[0].maxDeviation: required key is missing"),
    ({"gamma": 1, "models": [{"name": "llama_70b", "acc": "G2", "maxDeviation": 0.1},
                             {"name": "llama_70b", "acc": "G2", "maxDeviation": 0.2}]},
     "$.optimizer.robustness.models[1]: duplicate name/acc 'llama_70b'/'G2'"),
    ({"gamma": 1, "models": {"name": "x"}}, "$.optimizer.robustness.models: expected a list"),
    ([1], "$.optimizer.robustness: expected an object"),
])
def test_bad_robustness_names_file_path_and_value(small_copy: Path, section, message: str) -> None:
    _robustness(small_copy, section)
    with pytest.raises(DataFileError) as err:
        datafiles.load_system_dir(str(small_copy))
    assert "optimizer-data.json" in str(err.value) and message in str(err.value)


def test_deviation_for_a_pair_without_model_data_is_a_warning_or_strict_error(small_copy: Path) -> None:
    _robustness(small_copy, {"gamma": 1, "models": [{"name": "llama_70b", "acc": "H100", "maxDeviation": 0.1}]})
    loaded = datafiles.load_system_dir(str(small_copy))
    assert any("robustness.models[0]" in w and "'llama_70b' on 'H100'" in w for w in loaded.warnings)
    with pytest.raises(DataFileError, match="strict mode"):
        datafiles.load_system_dir(str(small_copy), strict=True)


def test_unknown_key_in_robustness_is_a_warning(small_copy: Path) -> None:
    _robustness(small_copy, {"gamma": 1, "maxDeviaton": 0.2})
    loaded = datafiles.load_system_dir(str(small_copy))
    assert any("robustness.maxDeviaton: unknown key ignored" in w for w in loaded.warnings)


def test_robustness_is_written_back_and_reloads_the_same(small_copy: Path, tmp_path: Path) -> None:
    _robustness(small_copy, {"gamma": 2, "maxDeviation": {"alpha": 0.1, "beta": 0.2, "gamma": 0.3},
                             "models": [{"name": "llama_70b", "acc": "G2", "maxDeviation": 0.4}]})
    system = datafiles.load_system_dir(str(small_copy)).system
    out = tmp_path / "system-data.json"
    datafiles.write_system_file(str(out), system)
    assert datafiles.load_system_file(str(out), strict=True).system == system
