"""Inferno's data files: both sample sets load, write back and reload unchanged; bad input names the culprit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.core import datafiles
from services.core.errors import DataFileError
from services.core.model import SaturationPolicy

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "inferno"
SETS = [pytest.param("small", id="small"), pytest.param("large", id="large")]


@pytest.fixture
def small_copy(tmp_path: Path) -> Path:
    target = tmp_path / "small"
    shutil.copytree(SAMPLES / "small", target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name", SETS)
def test_sample_set_loads_without_warnings(name: str) -> None:
    loaded = datafiles.load_system_dir(str(SAMPLES / name), strict=True)
    assert loaded.warnings == ()
    assert loaded.system.servers and loaded.system.models and loaded.system.accelerators


def test_small_set_reads_keys_whatever_their_case() -> None:
    system = datafiles.load_system_dir(str(SAMPLES / "small")).system
    server = next(s for s in system.servers if s.name == "Premium-llama_13b")
    # server-data.json spells them AvgInTokens / AvgOutTokens
    assert (server.load.arrival_rate_rpm, server.load.avg_in_tokens, server.load.avg_out_tokens) == (60, 128, 1024)
    assert system.optimizer.saturation_policy is SaturationPolicy.ROUND_ROBIN
    assert system.capacity.count("G2") == 512 and system.capacity.count("H100") == 0


def test_multi_card_accelerator_keeps_type_and_multiplicity() -> None:
    system = datafiles.load_system_dir(str(SAMPLES / "small")).system
    acc = system.accelerator("2xAIU2")
    assert acc is not None and (acc.type, acc.multiplicity) == ("AIU2", 2)


@pytest.mark.parametrize("name", SETS)
def test_written_directory_loads_to_the_same_model(name: str, tmp_path: Path) -> None:
    system = datafiles.load_system_dir(str(SAMPLES / name)).system
    datafiles.write_system_dir(str(tmp_path), system)
    assert datafiles.load_system_dir(str(tmp_path), strict=True).system == system


@pytest.mark.parametrize("name", SETS)
def test_written_system_file_loads_to_the_same_model(name: str, tmp_path: Path) -> None:
    system = datafiles.load_system_dir(str(SAMPLES / name)).system
    path = tmp_path / "system-data.json"
    datafiles.write_system_file(str(path), system)
    assert set(json.loads(path.read_text())["system"]) == {
        "acceleratorData", "capacityData", "modelData", "serviceClassData", "serverData", "optimizerData"}
    assert datafiles.load_system_file(str(path), strict=True).system == system


def test_published_solution_round_trips(tmp_path: Path) -> None:
    solution = datafiles.read_solution(str(SAMPLES / "small" / "solution-data.json"))
    assert len(solution.allocations) == 15
    row = solution.allocations["Bronze-granite_13b"]
    assert (row.accelerator, row.num_replicas, row.max_batch, row.cost_per_hour) == ("G2", 3, 38, 69)
    datafiles.write_solution(str(tmp_path / "out.json"), solution)
    assert datafiles.read_solution(str(tmp_path / "out.json")) == solution


def test_unknown_key_is_a_warning_naming_file_and_key(small_copy: Path) -> None:
    edit(small_copy / "serviceclass-data.json",
         lambda d: d["serviceClasses"][0]["modelTargets"][0].update({"slo-ttw": 500}))
    loaded = datafiles.load_system_dir(str(small_copy))
    assert loaded.warnings == (
        "serviceclass-data.json: $.serviceClasses[0].modelTargets[0].slo-ttw: unknown key ignored",)


def test_unknown_key_fails_in_strict_mode(small_copy: Path) -> None:
    edit(small_copy / "optimizer-data.json", lambda d: d["optimizer"].update({"turbo": True}))
    with pytest.raises(DataFileError, match=r"optimizer-data.json: \$.optimizer.turbo: unknown key"):
        datafiles.load_system_dir(str(small_copy), strict=True)


def _set(section: str, index: int, key: str, value):
    return lambda d: d[section][index].update({key: value})


def _respell(section: str, index: int, key: str, spelling: str, value):
    """Replace ``key`` by ``spelling`` (another case) holding ``value``."""
    def change(d) -> None:
        d[section][index].pop(key)
        d[section][index][spelling] = value
    return change


BAD_INPUT = [
    pytest.param("server-data.json", lambda d: d["servers"][0]["currentAlloc"]["load"].update({"arrivalRate": "fast"}),
                 r"server-data.json: \$.servers\[0\].currentAlloc.load.arrivalRate: expected a number, got 'fast'",
                 id="wrong-type"),
    pytest.param("capacity-data.json", lambda d: d["count"][0].update({"count": -4}),
                 r"capacity-data.json: \$.count\[0\].count: expected a non-negative whole number, got -4",
                 id="negative-count"),
    pytest.param("accelerator-data.json", _set("accelerators", 1, "cost", -40.0),
                 r"accelerator-data.json: \$.accelerators\[1\].cost: expected a non-negative number, got -40.0",
                 id="negative-cost"),
    pytest.param("model-data.json", _set("models", 2, "acc", "TPU9"),
                 r"model-data.json: \$.models\[2\].acc: unknown accelerator 'TPU9'", id="unknown-accelerator"),
    pytest.param("server-data.json", _set("servers", 4, "class", "Platinum"),
                 r"server-data.json: \$.servers\[4\].class: unknown service class 'Platinum'", id="unknown-class"),
    pytest.param("server-data.json", lambda d: d["servers"][1].update({"name": d["servers"][0]["name"]}),
                 r"server-data.json: \$.servers\[1\].name: duplicate name 'Premium-llama_13b'", id="duplicate-server"),
    pytest.param("accelerator-data.json", lambda d: d["accelerators"].append(dict(d["accelerators"][0])),
                 r"accelerator-data.json: \$.accelerators\[6\].name: duplicate name 'L4'", id="duplicate-accelerator"),
    pytest.param("serviceclass-data.json", lambda d: d["serviceClasses"][0].pop("name"),
                 r"serviceclass-data.json: \$.serviceClasses\[0\].name: required key is missing", id="missing-key"),
    pytest.param("model-data.json", lambda d: d["models"][0].update({"perfParms": [1, 2]}),
                 r"model-data.json: \$.models\[0\].perfParms: expected an object, got a list", id="list-for-object"),
    pytest.param("optimizer-data.json", lambda d: d["optimizer"].update({"saturationPolicy": "Greedy"}),
                 r"optimizer-data.json: \$.optimizer.saturationPolicy: expected one of None, .*got 'Greedy'",
                 id="unknown-policy"),
    pytest.param("model-data.json", _set("models", 3, "accCount", -1),
                 r"model-data.json: \$.models\[3\].accCount: expected a non-negative whole number, got -1",
                 id="negative-acc-count"),
    pytest.param("accelerator-data.json", _set("accelerators", 2, "multiplicity", 0),
                 r"accelerator-data.json: \$.accelerators\[2\].multiplicity: expected a positive whole number, got 0",
                 id="zero-multiplicity"),
    pytest.param("accelerator-data.json", _respell("accelerators", 2, "multiplicity", "Multiplicity", -2),
                 r"accelerator-data.json: \$.accelerators\[2\].Multiplicity: expected a positive whole number, got -2",
                 id="negative-multiplicity"),
]


@pytest.mark.parametrize(("file", "change", "message"), BAD_INPUT)
def test_bad_input_error_names_file_path_and_value(small_copy: Path, file: str, change, message: str) -> None:
    edit(small_copy / file, change)
    with pytest.raises(DataFileError, match=message):
        datafiles.load_system_dir(str(small_copy))


def test_missing_required_file_is_named(small_copy: Path) -> None:
    (small_copy / "model-data.json").unlink()
    with pytest.raises(DataFileError, match=r"model-data.json: \$: file not found at .*model-data.json"):
        datafiles.load_system_dir(str(small_copy))


def test_missing_capacity_and_optimizer_files_mean_none_and_defaults(small_copy: Path) -> None:
    (small_copy / "capacity-data.json").unlink()
    (small_copy / "optimizer-data.json").unlink()
    system = datafiles.load_system_dir(str(small_copy)).system
    assert dict(system.capacity.counts) == {} and system.optimizer.saturation_policy is SaturationPolicy.NONE


def test_invalid_json_names_line_and_column(small_copy: Path) -> None:
    (small_copy / "server-data.json").write_text('{"servers": [\n  {"name": "a",,}\n]}')
    with pytest.raises(DataFileError, match=r"server-data.json: \$: invalid JSON at line 2 column"):
        datafiles.load_system_dir(str(small_copy))


def test_capacity_file_reads_alone(small_copy: Path) -> None:
    capacity = datafiles.load_capacity(str(small_copy / "capacity-data.json"))
    assert dict(capacity.counts) == {"L4": 1024, "A100": 768, "AIU2": 1024, "G2": 512}


@pytest.mark.parametrize("priority", [500, 0, -3])
def test_priority_out_of_range_becomes_lowest_with_a_warning(small_copy: Path, priority: int) -> None:
    edit(small_copy / "serviceclass-data.json", _set("serviceClasses", 0, "priority", priority))
    loaded = datafiles.load_system_dir(str(small_copy))
    assert loaded.system.service_classes[0].priority == 100
    assert loaded.warnings == (f"serviceclass-data.json: $.serviceClasses[0].priority: priority {priority} outside "
                               "1..100, using 100 (the lowest)",)


def test_priority_out_of_range_fails_in_strict_mode(small_copy: Path) -> None:
    edit(small_copy / "serviceclass-data.json", _set("serviceClasses", 1, "priority", -3))
    with pytest.raises(DataFileError, match=r"serviceclass-data.json: \$.serviceClasses\[1\].priority: "
                                            r"priority -3 outside 1..100, .*\(strict mode\)"):
        datafiles.load_system_dir(str(small_copy), strict=True)


def test_priority_must_still_be_a_whole_number(small_copy: Path) -> None:
    edit(small_copy / "serviceclass-data.json", _set("serviceClasses", 0, "priority", "high"))
    with pytest.raises(DataFileError, match=r"\$.serviceClasses\[0\].priority: expected a whole number, got 'high'"):
        datafiles.load_system_dir(str(small_copy))


def test_acc_count_zero_keeps_inferno_meaning_of_one_without_warning(small_copy: Path) -> None:
    edit(small_copy / "model-data.json", _set("models", 0, "accCount", 0))
    loaded = datafiles.load_system_dir(str(small_copy), strict=True)
    assert loaded.warnings == () and loaded.system.models[0].acc_count == 1


def test_missing_multiplicity_means_one(small_copy: Path) -> None:
    edit(small_copy / "accelerator-data.json", lambda d: d["accelerators"][0].pop("multiplicity"))
    system = datafiles.load_system_dir(str(small_copy), strict=True).system
    assert system.accelerators[0].multiplicity == 1


def _add_capacity(card_type: str, count: int):
    return lambda d: d["count"].append({"type": card_type, "count": count})


def test_capacity_for_a_type_no_accelerator_has_is_a_warning(small_copy: Path) -> None:
    edit(small_copy / "capacity-data.json", _add_capacity("ZZ", 8))
    loaded = datafiles.load_system_dir(str(small_copy))
    assert loaded.system.capacity.count("ZZ") == 8
    assert loaded.warnings == ("capacity-data.json: $.count[4].type: no accelerator has type 'ZZ', its capacity is "
                               "never used (types: A100, AIU2, G2, L4)",)


def test_capacity_for_a_type_no_accelerator_has_fails_in_strict_mode(small_copy: Path) -> None:
    edit(small_copy / "capacity-data.json", _add_capacity("ZZ", 0))
    with pytest.raises(DataFileError, match=r"capacity-data.json: \$.count\[4\].type: no accelerator has type 'ZZ'.*"
                                            r"\(strict mode\)"):
        datafiles.load_system_dir(str(small_copy), strict=True)


def test_capacity_file_read_alone_is_not_checked_against_accelerators(small_copy: Path) -> None:
    edit(small_copy / "capacity-data.json", _add_capacity("ZZ", 8))
    assert datafiles.load_capacity(str(small_copy / "capacity-data.json")).count("ZZ") == 8


def _system_file(directory: Path, tmp_path: Path, section: str, change) -> Path:
    """The six files of ``directory`` as one system-data.json, with ``change`` applied to ``section``."""
    data = {"system": {key: json.loads((directory / datafiles.FILES[name]).read_text())
                       for name, key in datafiles._SYSTEM_KEYS.items()}}
    change(data["system"][section])
    path = tmp_path / "system-data.json"
    path.write_text(json.dumps(data))
    return path


SYSTEM_BAD_INPUT = [
    pytest.param("modelData", _set("models", 2, "acc", "TPU9"),
                 r"system-data.json: \$.system.modelData.models\[2\].acc: unknown accelerator 'TPU9'",
                 id="unknown-accelerator"),
    pytest.param("serverData", _set("servers", 4, "class", "Platinum"),
                 r"system-data.json: \$.system.serverData.servers\[4\].class: unknown service class 'Platinum'",
                 id="unknown-class"),
    pytest.param("serverData", lambda d: d["servers"][1].update({"name": d["servers"][0]["name"]}),
                 r"system-data.json: \$.system.serverData.servers\[1\].name: duplicate name 'Premium-llama_13b'",
                 id="duplicate-server"),
    pytest.param("acceleratorData", lambda d: d["accelerators"].append(dict(d["accelerators"][0])),
                 r"system-data.json: \$.system.acceleratorData.accelerators\[6\].name: duplicate name 'L4'",
                 id="duplicate-accelerator"),
    pytest.param("capacityData", lambda d: d["count"][0].update({"count": -4}),
                 r"system-data.json: \$.system.capacityData.count\[0\].count: expected a non-negative whole number",
                 id="single-field-error-for-comparison"),
]


@pytest.mark.parametrize(("section", "change", "message"), SYSTEM_BAD_INPUT)
def test_system_file_errors_name_the_full_path_cross_references_included(
        small_copy: Path, tmp_path: Path, section: str, change, message: str) -> None:
    path = _system_file(small_copy, tmp_path, section, change)
    with pytest.raises(DataFileError, match=message):
        datafiles.load_system_file(str(path))


def test_system_file_capacity_warning_names_the_full_path(small_copy: Path, tmp_path: Path) -> None:
    path = _system_file(small_copy, tmp_path, "capacityData", _add_capacity("ZZ", 8))
    (warning,) = datafiles.load_system_file(str(path)).warnings
    assert warning.startswith("system-data.json: $.system.capacityData.count[4].type: no accelerator has type 'ZZ'")


def test_static_data_loads_without_server_file_when_servers_come_from_the_cluster(small_copy: Path) -> None:
    (small_copy / "server-data.json").unlink()
    system = datafiles.load_system_dir(str(small_copy), require_servers=False).system
    assert system.servers == () and len(system.models) == 30
    with pytest.raises(DataFileError, match="server-data.json"):
        datafiles.load_system_dir(str(small_copy))


def test_model_v1_settings_and_measured_c2_are_read_and_written_back(small_copy: Path, tmp_path: Path) -> None:
    edit(small_copy / "optimizer-data.json",
         lambda d: d["optimizer"].update(serviceModel="v1", outputC2=0.5, tokenBudget=2048))
    edit(small_copy / "server-data.json", lambda d: d["servers"][0]["currentAlloc"]["load"].update(outTokensC2=0.25))
    system = datafiles.load_system_dir(str(small_copy), strict=True).system
    settings = system.optimizer
    assert (settings.service_model.value, settings.output_c2, settings.token_budget) == ("v1", 0.5, 2048)
    assert [s.load.out_tokens_c2 for s in system.servers][:2] == [0.25, None]
    (tmp_path / "out").mkdir()
    datafiles.write_system_dir(str(tmp_path / "out"), system)
    assert datafiles.load_system_dir(str(tmp_path / "out"), strict=True).system == system


def test_token_budget_must_be_positive(small_copy: Path) -> None:
    edit(small_copy / "optimizer-data.json", lambda d: d["optimizer"].update(tokenBudget=0))
    with pytest.raises(DataFileError, match="tokenBudget"):
        datafiles.load_system_dir(str(small_copy))


def test_percentile_slos_are_read_beside_means_and_written_back(small_copy: Path, tmp_path: Path) -> None:
    edit(small_copy / "serviceclass-data.json", lambda d: d["serviceClasses"][0]["modelTargets"][0].update(
        {"slo-TTFT-p90": 400, "slo-itl-p99": 60, "slo-ttft-p50": 150}))
    loaded = datafiles.load_system_dir(str(small_copy), strict=True)
    target = loaded.system.service_classes[0].targets[0]
    assert (target.slo_ttft_p90_ms, target.slo_itl_p99_ms, target.slo_ttft_p50_ms) == (400, 60, 150)
    assert target.slo_itl_ms > 0 and target.slo_ttft_p95_ms == 0.0  # the means stay, unset percentiles are 0
    assert target.percentile_targets() == (("itl", 99, 60), ("ttft", 50, 150), ("ttft", 90, 400))
    (tmp_path / "out").mkdir()
    datafiles.write_system_dir(str(tmp_path / "out"), loaded.system)
    assert datafiles.load_system_dir(str(tmp_path / "out"), strict=True).system == loaded.system


@pytest.mark.parametrize("key, value, message", [
    ("slo-ttft-p90", -1, r"slo-ttft-p90.*-1"), ("slo-itl-p99", 4e6, r"slo-itl-p99"),
    ("slo-itl-p99", "fast", r"slo-itl-p99")])
def test_bad_percentile_slo_names_key_and_value(small_copy: Path, key: str, value, message: str) -> None:
    edit(small_copy / "serviceclass-data.json",
         lambda d: d["serviceClasses"][0]["modelTargets"][0].update({key: value}))
    with pytest.raises(DataFileError, match=message):
        datafiles.load_system_dir(str(small_copy))


def test_unsupported_percentile_is_an_unknown_key(small_copy: Path) -> None:
    edit(small_copy / "serviceclass-data.json",
         lambda d: d["serviceClasses"][0]["modelTargets"][0].update({"slo-ttft-p80": 300}))
    assert datafiles.load_system_dir(str(small_copy)).warnings == (
        "serviceclass-data.json: $.serviceClasses[0].modelTargets[0].slo-ttft-p80: unknown key ignored",)
