"""Physical bounds of every figure that enters the system (data files, gRPC requests, labels), and the short
form of a value in an error message (docs/model.md s1, "Bounds").

A value outside its bound is an input error, never something to compute with: Infinity, NaN, a 400-digit
integer or ``atTokens`` 2147483647 would overflow the model or allocate gigabytes. The bounds are generous
(far above any real deployment) so that no real input is refused. check_system() applies them to a whole
SystemData (the gRPC path); the data-file reader applies the same constants key by key, naming file and
JSON path. Pure: standard library only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from services.core import model as m
from services.core.errors import InvalidInputError

MAX_TOKENS = 10_000_000
"""Tokens per request (avgInTokens, avgOutTokens, atTokens): the longest context windows published."""
MIN_AVG_OUT_TOKENS = 1.0
"""Every completed request generates at least one token; an average in (0, 1) is a data error in files."""
MAX_BATCH_SIZE = 4_096
"""Concurrent sequences of one replica (vLLM --max-num-seqs; its defaults are 256 and 1024)."""
MAX_QUEUE_SIZE = 1_000_000
"""Requests waiting in one replica."""
MAX_REPLICAS = 10_000
"""Replicas of one server (Kubernetes is tested to 150,000 pods in a whole cluster)."""
MAX_ACCELERATORS = 1_024
"""Accelerators per replica (accCount) and cards per accelerator (multiplicity)."""
MAX_CAPACITY = 1_000_000
"""Cards of one type in the cluster."""
MAX_ARRIVAL_RATE_RPM = 1_000_000.0
"""Requests per minute offered to one server (16,667 req/s)."""
MAX_COST_PER_HOUR = 1_000_000.0
"""Cost of one accelerator per hour, in the data's cost unit."""
MAX_TIME_MS = 3_600_000.0
"""Any time in ms: SLO targets, perfParms alpha/beta/gamma, predicted ITL and TTFT (one hour)."""
MAX_TPS = 100_000_000.0
"""Throughput target, output tokens per second."""
MAX_FIGURE = 1e12
"""Any other figure (memory, bandwidth, power): finite and below this, so that sums stay finite."""
MAX_TIME_LIMIT_S = 3_600.0
"""The solver's time limit."""
MAX_C2 = 100.0
"""Squared coefficient of variation of output lengths (0 fixed, 1 exponential; heavy tails reach tens)."""
MAX_DEVIATION = 10.0
"""Relative deviation of a perfParm in robust sizing (10 = up to 11 times the fitted value)."""
MAX_ROBUST_BUDGET = 10_000.0
"""Robust sizing's Gamma: server groups at their worst case at once (more than any system has)."""
MAX_NAME_LENGTH = 1_024
"""Characters of a name (server, model, accelerator, class)."""
SHORT_LENGTH = 60
"""Characters of a value quoted in an error message."""


def short(value: Any, limit: int = SHORT_LENGTH) -> str:
    """repr(value) cut to ``limit`` characters (``...`` and the full length appended), safe for any value:
    a 5,000-digit integer, a lone surrogate or a 100k-character string all give a short printable text."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python converts to text
        text = f"<integer of about {int(value.bit_length() * 0.30103)} digits>"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= limit:
        return text
    return f"{text[:limit - 3]}... ({len(text)} characters)"


def short_name(value: str, limit: int = SHORT_LENGTH) -> str:
    """A name as it is when short and printable (``servers[a-b]``), else its shortened repr."""
    if len(value) <= limit and value.isprintable() and not name_problem(value):
        return value
    return short(value, limit)


@dataclass(frozen=True, slots=True)
class Bound:
    """A closed range [low, high] of a field; ``unit`` names it in messages."""

    low: float
    high: float
    unit: str = ""

    def problem(self, value: Any) -> str:
        """"" when ``value`` is a finite number within the range, else why not (value shortened)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {short(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {short(value)}"
        if not self.low <= value <= self.high:
            unit = f" {self.unit}" if self.unit else ""
            return f"must be within {_figure(self.low)}..{_figure(self.high)}{unit}, got {short(value)}"
        return ""


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


TOKENS = Bound(0, MAX_TOKENS, "tokens")
BATCH = Bound(0, MAX_BATCH_SIZE, "requests")
QUEUE = Bound(0, MAX_QUEUE_SIZE, "requests")
REPLICAS = Bound(0, MAX_REPLICAS, "replicas")
ACCELERATORS = Bound(0, MAX_ACCELERATORS)
CAPACITY = Bound(0, MAX_CAPACITY, "cards")
RATE_RPM = Bound(0, MAX_ARRIVAL_RATE_RPM, "req/min")
COST = Bound(0, MAX_COST_PER_HOUR, "per hour")
TIME_MS = Bound(0, MAX_TIME_MS, "ms")
TPS = Bound(0, MAX_TPS, "tokens/s")
FIGURE = Bound(0, MAX_FIGURE)
TIME_LIMIT_S = Bound(0, MAX_TIME_LIMIT_S, "s")
FRACTION = Bound(0, 1)
C2 = Bound(0, MAX_C2)
TOKEN_BUDGET = Bound(1, MAX_TOKENS, "tokens")
DEVIATION = Bound(0, MAX_DEVIATION)
ROBUST_BUDGET = Bound(0, MAX_ROBUST_BUDGET, "server groups")
ALLOCATION_COST = Bound(0, MAX_COST_PER_HOUR * MAX_ACCELERATORS * MAX_REPLICAS, "per hour")
"""A whole allocation's cost: cost x accCount x replicas at their bounds."""


def name_problem(value: str) -> str:
    """"" for a usable name, else why not: longer than MAX_NAME_LENGTH, or not valid Unicode (a lone
    surrogate, which no UTF-8 output can print)."""
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters, got {len(value)}: {short(value)}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"must be valid Unicode (no lone surrogates), got {short(value)}"
    return ""


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def namespace_problem(value: str) -> str:
    """"" for a valid Kubernetes namespace name (an RFC 1123 DNS label: at most 63 lower-case letters, digits
    and '-', alphanumeric at both ends), else why not (value shortened)."""
    if _DNS_LABEL.match(value):
        return ""
    return (f"{short(value)} is not a namespace name (at most 63 lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit)")


def _check(field: str, value: Any, bound: Bound) -> None:
    problem = bound.problem(value)
    if problem:
        raise InvalidInputError(f"{field} {problem}")


def _check_name(field: str, value: str) -> None:
    problem = name_problem(value)
    if problem:
        raise InvalidInputError(f"{field} {problem}")


def check_load(load: m.Load, field: str) -> None:
    """Raise InvalidInputError naming ``field`` when a load figure is non-finite or out of bounds."""
    _check(f"{field}.arrival_rate_rpm", load.arrival_rate_rpm, RATE_RPM)
    _check(f"{field}.avg_in_tokens", load.avg_in_tokens, TOKENS)
    _check(f"{field}.avg_out_tokens", load.avg_out_tokens, TOKENS)
    if load.out_tokens_c2 is not None:
        _check(f"{field}.out_tokens_c2", load.out_tokens_c2, C2)


def check_allocation(alloc: m.Allocation, field: str) -> None:
    """Raise InvalidInputError naming ``field`` when an allocation figure is out of bounds."""
    _check_name(f"{field}.accelerator", alloc.accelerator)
    _check(f"{field}.num_replicas", alloc.num_replicas, REPLICAS)
    _check(f"{field}.max_batch", alloc.max_batch, BATCH)
    _check(f"{field}.max_queue", alloc.max_queue, QUEUE)
    _check(f"{field}.cost_per_hour", alloc.cost_per_hour, ALLOCATION_COST)
    _check(f"{field}.itl_ms", alloc.itl_ms, FIGURE)
    _check(f"{field}.ttft_ms", alloc.ttft_ms, FIGURE)
    for metric in ("ttft", "itl"):
        for q in m.SLO_PERCENTILES:
            _check(f"{field}.{metric}_ms_p{q}", getattr(alloc, f"{metric}_ms_p{q}"), FIGURE)
    _check(f"{field}.unserved_rate_rpm", alloc.unserved_rate_rpm, RATE_RPM)
    check_load(alloc.load, f"{field}.load")


def _check_server(server: m.Server, field: str) -> None:
    where = f"{field}[{short_name(server.name)}]"
    for key, value in (("name", server.name), ("model", server.model), ("service_class", server.service_class)):
        _check_name(f"{where}.{key}", value)
    _check(f"{where}.min_replicas", server.min_replicas, REPLICAS)
    _check(f"{where}.max_batch_size", server.max_batch_size, BATCH)
    _check(f"{where}.max_queue_size", server.max_queue_size, QUEUE)
    check_allocation(server.current, f"{where}.current")
    if server.desired is not None:
        check_allocation(server.desired, f"{where}.desired")


def _check_accelerator(acc: m.Accelerator, field: str) -> None:
    where = f"{field}[{short_name(acc.name)}]"
    _check_name(f"{where}.name", acc.name)
    _check_name(f"{where}.type", acc.type)
    _check(f"{where}.multiplicity", acc.multiplicity, ACCELERATORS)
    _check(f"{where}.cost_per_hour", acc.cost_per_hour, COST)
    for key in ("mem_size_gb", "mem_bw_gbps"):
        _check(f"{where}.{key}", getattr(acc, key), FIGURE)
    for key in ("idle_w", "full_w", "mid_power_w"):
        _check(f"{where}.power.{key}", getattr(acc.power, key), FIGURE)
    _check(f"{where}.power.mid_util", acc.power.mid_util, FRACTION)


def _check_model(perf: m.ModelPerf, field: str) -> None:
    where = f"{field}[{short_name(perf.model)}/{short_name(perf.accelerator)}]"
    _check_name(f"{where}.model", perf.model)
    _check_name(f"{where}.accelerator", perf.accelerator)
    _check(f"{where}.acc_count", perf.acc_count, ACCELERATORS)
    _check(f"{where}.max_batch_size", perf.max_batch_size, BATCH)
    _check(f"{where}.at_tokens", perf.at_tokens, TOKENS)
    for key in ("alpha_ms", "beta_ms", "gamma_ms", "ttft_overhead_ms"):
        _check(f"{where}.perf.{key}", getattr(perf.perf, key), TIME_MS)


def _check_class(svc: m.ServiceClass, field: str) -> None:
    where = f"{field}[{short_name(svc.name)}]"
    _check_name(f"{where}.name", svc.name)
    for target in svc.targets:
        at = f"{where}.targets[{short_name(target.model)}]"
        _check_name(f"{at}.model", target.model)
        _check(f"{at}.slo_itl_ms", target.slo_itl_ms, TIME_MS)
        _check(f"{at}.slo_ttft_ms", target.slo_ttft_ms, TIME_MS)
        _check(f"{at}.slo_tps", target.slo_tps, TPS)
        for metric in ("itl", "ttft"):
            for q in m.SLO_PERCENTILES:
                name = m.percentile_field(metric, q)
                _check(f"{at}.{name}", getattr(target, name), TIME_MS)


def check_system(system: m.SystemData, field: str = "system") -> None:
    """Raise InvalidInputError naming the field (``system.servers[a].current.load.avg_out_tokens``)
    and the shortened value of the first figure of ``system`` outside its bound (docs/model.md s1)."""
    for acc in system.accelerators:
        _check_accelerator(acc, f"{field}.accelerators")
    for perf in system.models:
        _check_model(perf, f"{field}.models")
    for svc in system.service_classes:
        _check_class(svc, f"{field}.service_classes")
    for server in system.servers:
        _check_server(server, f"{field}.servers")
    for card_type, count in system.capacity.counts.items():
        _check_name(f"{field}.capacity.counts[{short_name(card_type)}].type", card_type)
        _check(f"{field}.capacity.counts[{short_name(card_type)}]", count, CAPACITY)
    _check(f"{field}.optimizer.time_limit_s", system.optimizer.time_limit_s, TIME_LIMIT_S)
    _check(f"{field}.optimizer.output_c2", system.optimizer.output_c2, C2)
    _check(f"{field}.optimizer.token_budget", system.optimizer.token_budget, TOKEN_BUDGET)
    robust = system.optimizer.robustness
    if robust is not None:
        at = f"{field}.optimizer.robustness"
        _check(f"{at}.gamma", robust.gamma, ROBUST_BUDGET)
        pairs = [("default", robust.default)]
        pairs += [(f"deviations[{short_name(model)}/{short_name(acc)}]", d) for model, acc, d in robust.deviations]
        for where, d in pairs:
            for key in ("alpha", "beta", "gamma"):
                _check(f"{at}.{where}.{key}", getattr(d, key), DEVIATION)
