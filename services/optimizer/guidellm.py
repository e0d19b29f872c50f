"""Readers of GuideLLM benchmark reports: one BenchmarkPoint per benchmark (docs/model.md s11).

Three formats, told apart by content: GuideLLM's native JSON report (``{"benchmarks": [{"args", "metrics",
...}]}``), its CSV export (a header of three rows: group, metric, statistic), and the flattened JSON of the
CSV export (a list of records keyed by column names such as ``Successful Time to first token ms mean``).
Everything read is the figure of the *successful* requests. Any problem raises GuideLLMError naming the file
(and the benchmark or column). Pure apart from reading the file: no clock, no environment.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.errors import InfernoError

RATE_STRATEGIES = frozenset({"synchronous", "constant", "poisson"})
"""Strategies that are a steady rate the model can replay; "throughput" (everything at once) and "concurrent"
(a fixed number in flight) are read but not fitted."""


class GuideLLMError(InfernoError):
    """A GuideLLM report that cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class BenchmarkPoint:
    """One GuideLLM benchmark (one rate of a sweep), figures of its successful requests.

    ``strategy``: synchronous | constant | poisson | throughput | concurrent; ``rate_rps`` completed
    requests/s; tokens per request (means); ``out_c2`` the squared coefficient of variation of the output
    length; ``ttft_ms``, ``itl_ms`` means (NaN where GuideLLM wrote a negative mean, a known defect of its
    timestamps); ``concurrency`` mean requests in flight; ``requests`` completed.
    """

    file: str
    strategy: str
    rate_rps: float
    in_tokens: float
    out_tokens: float
    out_c2: float
    ttft_ms: float
    itl_ms: float
    concurrency: float
    requests: int

    @property
    def steady_rate(self) -> bool:
        """Whether the model can replay this benchmark as a steady arrival rate."""
        return self.strategy in RATE_STRATEGIES

    @property
    def arrival_c2(self) -> float:
        """C2 of GuideLLM's inter-arrival times: 0 for evenly spaced ``constant``, 1 for ``poisson``."""
        return 0.0 if self.strategy == "constant" else 1.0


def read_points(path: str | Path) -> list[BenchmarkPoint]:
    """Every benchmark of the GuideLLM report at ``path`` (native JSON, CSV export, or flattened JSON).

    Raises GuideLLMError naming the file for a missing or unreadable file, an unknown layout, a missing or
    non-numeric figure, or a report without benchmarks.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GuideLLMError(f"{name}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GuideLLMError(f"{name}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
        if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
            found = [_native(name, k, b) for k, b in enumerate(data["benchmarks"])]
        elif isinstance(data, list):
            found = [_flat(name, k, r) for k, r in enumerate(data)]
        else:
            raise GuideLLMError(f"{name}: not a GuideLLM report (expected a 'benchmarks' list or a list of "
                                "benchmark records)")
    else:
        found = _csv(name, text)
    points = [p for p in found if p is not None]
    if not points:
        raise GuideLLMError(f"{name}: the report holds no benchmark")
    return points


def _number(name: str, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GuideLLMError(f"{name}: {where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise GuideLLMError(f"{name}: {where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise GuideLLMError(f"{name}: {where}: expected a finite number, got {value!r}")
    return number


def _point(name: str, strategy: str, get: Callable[[str], float]) -> BenchmarkPoint | None:
    """The point, or None for a throughput / concurrency run whose figures are unusable (GuideLLM writes
    negative means for some bursts); in a steady-rate run a bad figure is an error."""
    try:
        return _figures(name, strategy, get)
    except GuideLLMError:
        if strategy in RATE_STRATEGIES:
            raise
        return None


def _figures(name: str, strategy: str, get: Callable[[str], float]) -> BenchmarkPoint:
    counts = {key: get(key) for key in ("rps", "input mean", "output mean", "output std", "concurrency", "count")}
    for key, value in counts.items():
        if value < 0:
            raise GuideLLMError(f"{name}: {strategy} benchmark: {key} must be >= 0, got {value!r}")
    out_tokens = counts["output mean"]
    latencies = [get("ttft"), get("itl")]
    # GuideLLM sometimes writes a negative mean (a request with a broken timestamp): that figure is unknown.
    ttft, itl = (value if value >= 0 else math.nan for value in latencies)
    return BenchmarkPoint(name, strategy, counts["rps"], counts["input mean"], out_tokens,
                          (counts["output std"] / out_tokens) ** 2 if out_tokens > 0 else 0.0, ttft, itl,
                          counts["concurrency"], int(counts["count"]))


# --- native JSON: benchmarks[].metrics.<metric>.successful.<stat> -------------------------------------------

_NATIVE = {"rps": ("requests_per_second", "mean"), "concurrency": ("request_concurrency", "mean"),
           "input mean": ("prompt_token_count", "mean"), "output mean": ("output_token_count", "mean"),
           "output std": ("output_token_count", "std_dev"), "ttft": ("time_to_first_token_ms", "mean"),
           "itl": ("inter_token_latency_ms", "mean"), "count": ("output_token_count", "count")}


def _native(name: str, index: int, bench: Any) -> BenchmarkPoint | None:
    where = f"benchmarks[{index}]"
    if not isinstance(bench, dict) or not isinstance(bench.get("metrics"), dict):
        raise GuideLLMError(f"{name}: {where}: expected an object with 'metrics'")
    strategy = (bench.get("args") or {}).get("strategy") or bench.get("config", {}).get("strategy") or {}
    kind = strategy.get("type_") if isinstance(strategy, dict) else None
    if not isinstance(kind, str):
        raise GuideLLMError(f"{name}: {where}.args.strategy.type_ is missing")

    def get(key: str) -> float:
        metric, stat = _NATIVE[key]
        try:
            value = bench["metrics"][metric]["successful"][stat]
        except (KeyError, TypeError):
            raise GuideLLMError(f"{name}: {where}.metrics.{metric}.successful.{stat} is missing") from None
        return _number(name, f"{where}.metrics.{metric}.successful.{stat}", value)

    return _point(name, kind, get)


# --- flattened JSON of the CSV export: records keyed by GuideLLM's column names ------------------------------

_FLAT = {"rps": "Successful Requests per second mean", "concurrency": "Successful Request concurrency mean",
         "input mean": "Successful Prompt token count mean", "output mean": "Successful Output token count mean",
         "output std": "Successful Output token count std dev", "ttft": "Successful Time to first token ms mean",
         "itl": "Successful Inter token latency ms mean", "count": "Successful Requests"}


def _flat(name: str, index: int, record: Any) -> BenchmarkPoint | None:
    where = f"record {index}"
    if not isinstance(record, dict):
        raise GuideLLMError(f"{name}: {where}: expected an object of GuideLLM columns")
    label = record.get("Name") or record.get("Type") or ""
    kind = str(label).split("@", 1)[0].strip().lower()
    if not kind:
        raise GuideLLMError(f"{name}: {where}: column 'Name' (the strategy, e.g. constant@1.5) is missing")

    def get(key: str) -> float:
        column = _FLAT[key]
        if column not in record:
            raise GuideLLMError(f"{name}: {where} ({label}): column {column!r} is missing")
        return _number(name, f"{where} ({label}) column {column!r}", record[column])

    return _point(name, kind, get)


# --- the CSV export ------------------------------------------------------------------------------------------
# GuideLLM writes the header of the FIRST benchmark only, and every distribution as 4 columns (Mean, Median,
# Std Dev, Percentiles) once per request status (successful, incomplete, errored) that has data. A later row
# whose benchmark had incomplete or errored requests therefore has more columns than the header. Such a row
# is re-aligned: the blocks of each distribution are found by trying every count of extra blocks and keeping
# the one whose figures agree with each other (latency = TTFT + ITL x (tokens - 1); Little's law).

_DISTRIBUTIONS = ("Request Latency", "Streaming Iterations", "Time to First Token", "Time per Output Token",
                  "Inter Token Latency", "Requests/Sec", "Concurrency", "Input Tokens", "Output Tokens")
"""The distributions GuideLLM writes first, in order (Server Throughput's and Token Metrics' by metric)."""
_BLOCK = 4


def _csv(name: str, text: str) -> list[BenchmarkPoint | None]:
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 4 or len(rows[0]) != len(rows[1]) or "Benchmark" not in rows[0]:
        raise GuideLLMError(f"{name}: not a GuideLLM CSV export (expected a three-row header with a "
                            "'Benchmark' group)")
    header = list(zip(rows[0], rows[1], rows[2], strict=False))
    column = {(g, m.split(" ", 1)[-1] if m.startswith("Successful ") else m, s): k
              for k, (g, m, s) in enumerate(header)}

    def index(group: str, metric: str, stat: str = "") -> int:
        if (group, metric, stat) not in column:
            raise GuideLLMError(f"{name}: header has no column {group} / {metric} / {stat or '-'}")
        return column[group, metric, stat]

    strategy_col, counts = index("Benchmark", "Strategy"), [index("Request Counts", s) for s in
                                                            ("Successful", "Incomplete", "Errored")]
    first = index("Request Latency", "Sec", "Mean")
    points: list[BenchmarkPoint | None] = []
    for line, row in enumerate(rows[3:], start=4):
        if not any(row):
            continue
        where = f"row {line}"
        if len(row) <= first:
            raise GuideLLMError(f"{name}: {where}: {len(row)} columns, the header has {len(header)}")
        successful, incomplete, errored = (_number(name, f"{where} column {header[k][1]}", row[k]) for k in counts)
        extra = int(incomplete > 0) + int(errored > 0)
        strategy = row[strategy_col].strip().lower()
        try:
            means = _aligned_means(name, where, row, first, extra)
        except GuideLLMError:
            if strategy in RATE_STRATEGIES:
                raise
            continue  # a throughput or concurrency run the fit does not use
        means["count"] = successful
        points.append(_point(name, strategy, means.__getitem__))
    return points


def _blocks(name: str, where: str, row: list[str], first: int, count: int) -> list[tuple[float, float]]:
    """(mean, std dev) of the first ``count`` 4-column distribution blocks from column ``first``."""
    blocks = []
    for b in range(count):
        start = first + b * _BLOCK
        if start + _BLOCK > len(row) or not row[start + 3].startswith("["):
            break
        blocks.append((_number(name, f"{where} column {start + 1}", row[start]),
                       _number(name, f"{where} column {start + 3}", row[start + 2])))
    return blocks


def _aligned_means(name: str, where: str, row: list[str], first: int, extra: int) -> dict[str, float]:
    blocks = _blocks(name, where, row, first, len(_DISTRIBUTIONS) * (1 + extra))
    best: tuple[float, dict[str, float]] | None = None
    for counts in itertools.product(range(1, 2 + extra), repeat=len(_DISTRIBUTIONS) - 1):
        starts = [0, *itertools.accumulate(counts)]
        if starts[-1] >= len(blocks):
            continue
        got = dict(zip(_DISTRIBUTIONS, (blocks[s] for s in starts), strict=True))
        score = _inconsistency(got)
        if best is None or score < best[0]:
            best = (score, {"latency": got["Request Latency"][0], "ttft": got["Time to First Token"][0],
                            "itl": got["Inter Token Latency"][0], "rps": got["Requests/Sec"][0],
                            "concurrency": got["Concurrency"][0], "input mean": got["Input Tokens"][0],
                            "output mean": got["Output Tokens"][0], "output std": got["Output Tokens"][1]})
        if extra == 0:
            break
    if best is None or best[0] > _CONSISTENT:
        raise GuideLLMError(f"{name}: {where}: cannot tell the columns apart (GuideLLM writes a later benchmark's "
                            "extra request-status columns without a header); export the native JSON instead")
    return best[1]


_CONSISTENT = 0.1
"""Largest squared log error of the checks in _inconsistency for a row to count as aligned."""


def _inconsistency(got: dict[str, tuple[float, float]]) -> float:
    """How far the figures are from agreeing: latency = TTFT + ITL (K - 1), TPOT ~ latency / K, Little's law."""
    latency_ms = got["Request Latency"][0] * 1000
    ttft, tpot, itl = got["Time to First Token"][0], got["Time per Output Token"][0], got["Inter Token Latency"][0]
    out, rps, concurrency = got["Output Tokens"][0], got["Requests/Sec"][0], got["Concurrency"][0]
    checks = [(latency_ms, ttft + itl * max(out - 1, 0)), (tpot * out, latency_ms),
              (concurrency, rps * latency_ms / 1000)]
    return sum(math.log(max(a, 1e-9) / max(b, 1e-9)) ** 2 for a, b in checks)
