"""Hostile data files (issue 15's crash kinds): each is a DataFileError naming file, JSON path and the value cut
short, never a traceback; `solve` exits 1 with that one line (docs/model.md s1, bounds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.core import bounds, datafiles
from services.core.errors import DataFileError
from services.optimizer import cli

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "inferno"


@pytest.fixture
def small_copy(tmp_path: Path) -> Path:
    target = tmp_path / "small"
    shutil.copytree(SAMPLES / "small", target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


def rewrite(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, f"{old!r} not in {path.name}"
    path.write_bytes(data.replace(old, new, 1))


CASES = [
    pytest.param("serviceclass-data.json", b'"priority": 1', b'"priority": Infinity',
                 r"serviceclass-data.json: \$.serviceClasses\[0\].priority: expected a whole number, got inf",
                 id="priority-infinity"),
    pytest.param("serviceclass-data.json", b'"priority": 1', b'"priority": NaN',
                 r"\$.serviceClasses\[0\].priority: expected a whole number, got nan", id="priority-nan"),
    pytest.param("accelerator-data.json", b'"multiplicity": 1', b'"multiplicity": Infinity',
                 r"\$.accelerators\[0\].multiplicity: expected a whole number, got inf", id="multiplicity-infinity"),
    pytest.param("capacity-data.json", b'"count": 1024', b'"count": NaN',
                 r"capacity-data.json: \$.count\[0\].count: expected a whole number, got nan", id="count-nan"),
    pytest.param("model-data.json", b'"maxBatchSize": 102', b'"maxBatchSize": 1' + b"0" * 400,
                 r"\$.models\[0\].maxBatchSize: expected a whole number of magnitude at most 2\*\*53, got 1000+\.\.\. "
                 r"\(401 characters\)", id="400-digit-integer"),
    pytest.param("serviceclass-data.json", b'"slo-itl"', b'"slo-tps": 1' + b"0" * 400 + b', "slo-itl"',
                 r"slo-tps: expected a number at most 100,000,000 tokens/s \(docs/model.md s1\), got 1000+\.\.\. "
                 r"\(401 characters\)", id="400-digit-integer-in-a-number-field"),
    pytest.param("model-data.json", b'"maxBatchSize": 102', b'"maxBatchSize": 1' + b"0" * 4301,
                 r"model-data.json: \$: invalid JSON: a number of more than 4,300 digits", id="4301-digit-number"),
    pytest.param("model-data.json", b"granite_13b", b"gran\xffite",
                 r"model-data.json: \$: not UTF-8 text: byte b'\\xff' at offset \d+", id="non-utf8-byte"),
    pytest.param("model-data.json", b'"accCount": 1,', b'"deep": ' + b"[" * 5000 + b"]" * 5000 + b', "accCount": 1,',
                 r"model-data.json: \$: objects or lists nested too deeply", id="nested-5000-deep"),
    pytest.param("server-data.json", b'"AvgOutTokens": 1024', b'"AvgOutTokens": 0.5',
                 r"\$.servers\[0\].currentAlloc.load.AvgOutTokens: expected 0 \(no load\) or at least 1 output token "
                 r"per request .*got 0.5", id="avg-out-tokens-half"),
    pytest.param("model-data.json", b'"atTokens": 512', b'"atTokens": 1e308',
                 r"\$.models\[0\].atTokens: expected a whole number of magnitude at most 2\*\*53, got 1e\+308",
                 id="at-tokens-1e308"),
    pytest.param("model-data.json", b'"atTokens": 512', b'"atTokens": 2147483647',
                 r"\$.models\[0\].atTokens: expected a whole number at most 10,000,000 tokens \(docs/model.md s1\), "
                 r"got 2147483647", id="at-tokens-int32-max"),
    pytest.param("server-data.json", b'"name": "Premium-llama_13b"', b'"name": "Premium-\\ud800"',
                 r"\$.servers\[0\].name: must be valid Unicode \(no lone surrogates\), got 'Premium-\\ud800'",
                 id="lone-surrogate-in-name"),
    pytest.param("server-data.json", b'"arrivalRate": 60', b'"arrivalRate": 1e308',
                 r"\$.servers\[0\].currentAlloc.load.arrivalRate: expected a number at most 1,000,000 req/min",
                 id="arrival-rate-1e308"),
    pytest.param("accelerator-data.json", b'"cost": 6.00', b'"cost": 1e308',
                 r"\$.accelerators\[0\].cost: expected a number at most 1,000,000 per hour", id="cost-1e308"),
    pytest.param("serviceclass-data.json", b'"slo-itl"', b'"slo-tps": 1e300, "slo-itl"',
                 r"slo-tps: expected a number at most 100,000,000 tokens/s", id="slo-tps-1e300"),
    pytest.param("server-data.json", b'"name": "Premium-llama_13b"',
                 b'"minNumReplicas": 1000000000, "name": "Premium-llama_13b"',
                 r"\$.servers\[0\].minNumReplicas: expected a whole number at most 10,000 replicas",
                 id="min-replicas-1e9"),
]


@pytest.mark.parametrize(("file", "old", "new", "message"), CASES)
def test_hostile_value_is_a_data_file_error_naming_file_path_and_value(small_copy: Path, file: str, old: bytes,
                                                                       new: bytes, message: str) -> None:
    rewrite(small_copy / file, old, new)
    with pytest.raises(DataFileError, match=message) as err:
        datafiles.load_system_dir(str(small_copy))
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(("file", "old", "new", "message"), CASES)
def test_solve_exits_1_with_one_line_and_no_traceback(small_copy: Path, capsys, file: str, old: bytes, new: bytes,
                                                      message: str) -> None:
    rewrite(small_copy / file, old, new)
    assert cli.main(["solve", "--data-dir", str(small_copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {file}: $") and err.count("\n") == 1


def test_a_long_name_is_refused_and_quoted_short(small_copy: Path) -> None:
    rewrite(small_copy / "server-data.json", b'"name": "Premium-llama_13b"', b'"name": "' + b"x" * 100_000 + b'"')
    with pytest.raises(DataFileError, match=r"\$.servers\[0\].name: must be at most 1024 characters, got 100000: "
                                            r"'xxx+\.\.\. \(100002 characters\)") as err:
        datafiles.load_system_dir(str(small_copy))
    assert len(str(err.value)) < 200


def test_the_batch_rule_never_exceeds_the_batch_bound(small_copy: Path) -> None:
    """maxBatchSize 4096 at 10M tokens with 1-token requests would give a 4e10-wide chain: capped at 4096."""
    rewrite(small_copy / "model-data.json", b'"maxBatchSize": 102', b'"maxBatchSize": 4096')
    rewrite(small_copy / "model-data.json", b'"atTokens": 512', b'"atTokens": 10000000')
    rewrite(small_copy / "server-data.json", b'"AvgOutTokens": 1024', b'"AvgOutTokens": 1')
    loaded = datafiles.load_system_dir(str(small_copy))
    from services.optimizer.solver import solve

    result = solve(loaded.system)
    assert all(a.max_batch <= bounds.MAX_BATCH_SIZE for a in result.solution.allocations.values())
    assert all(a.num_replicas <= bounds.MAX_REPLICAS for a in result.solution.allocations.values())


def test_short_keeps_any_value_printable_and_short() -> None:
    assert bounds.short("abc") == "'abc'"
    assert bounds.short("x" * 1000) == "'" + "x" * 56 + "... (1002 characters)"
    assert bounds.short("\ud800") == "'\\ud800'"
    assert len(bounds.short(10**4000, limit=60)) <= 60 + 20
