"""Mutated Inferno data files through what `solve` does: read, solve, print the table, write the solution.

Each case starts from samples/inferno/small, changes one file in one to three ways (a value replaced by a
hostile one, a key removed or added, a list entry repeated, brackets nested thousands deep, a number of 4,301
digits, a byte that is not UTF-8, the file cut short) and runs it in-process. A domain error
(services.core.errors.InfernoError) is the expected answer to bad input; any other exception is a crash; a
solution with replicas, batch or cost outside the bounds of services.core.bounds is absurd.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from fuzz import values
from fuzz.figures import Figures
from services.core import bounds
from services.core.datafiles import FILES, load_system_dir
from services.core.errors import InfernoError
from services.core.inferno_json import solution_json
from services.optimizer.solver import solve
from services.optimizer.table import solution_table

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "inferno" / "small"
_DEEP, _BIG = "__fuzz_deep__", "__fuzz_big__"


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) under ``node``: where a value can be replaced or removed."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        out.append((node, key))
        _slots(child, out)
    return out


def _mutate_tree(data: Any, rng: random.Random) -> str:
    slots = _slots(data, [])
    if not slots:
        return "empty file"
    parent, key = rng.choice(slots)
    op = rng.random()
    if op < 0.55:
        value = values.anything(rng)
        parent[key] = value
        return f"[{key!r}] = {bounds.short(value, 40)}"
    if op < 0.65:
        parent[key] = rng.choice((_DEEP, _BIG))
        return f"[{key!r}] = {parent[key]}"
    if op < 0.75 and isinstance(parent, dict):
        del parent[key]
        return f"del [{key!r}]"
    if op < 0.85 and isinstance(parent, dict):
        name = rng.choice(("x", "\ud800", "y" * 2000))
        parent[name] = values.anything(rng)
        return f"added key {bounds.short(name, 20)}"
    if isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
        return f"repeated [{key}]"
    parent[key] = values.number(rng)
    return f"[{key!r}] = {bounds.short(parent[key], 40)}"


def _render(data: Any, rng: random.Random) -> tuple[bytes, str]:
    text = json.dumps(data, indent=1)
    text = text.replace(f'"{_DEEP}"', "[" * 5000 + "]" * 5000).replace(f'"{_BIG}"', "1" + "0" * 4301)
    raw = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.05:
        at = rng.randrange(len(raw) + 1)
        return raw[:at] + bytes([rng.randrange(0x80, 0x100)]) + raw[at:], "a byte that is not UTF-8"
    if roll < 0.08:
        return raw[:rng.randrange(len(raw) + 1)], "cut short"
    return raw, ""


def _absurd(result: Any) -> str:
    for name, alloc in result.solution.allocations.items():
        if not 0 <= alloc.num_replicas <= bounds.MAX_REPLICAS or alloc.max_batch > bounds.MAX_BATCH_SIZE:
            return f"{name}: {alloc.num_replicas} replicas, batch {alloc.max_batch}"
        if not math.isfinite(alloc.cost_per_hour) or alloc.cost_per_hour > bounds.ALLOCATION_COST.high:
            return f"{name}: cost {alloc.cost_per_hour!r}"
    return ""


def run_case(directory: str) -> tuple[str, str]:
    """Read, solve, print and serialise the system in ``directory``: ("", "") when it ends in a domain error or a
    sane solution, else (kind, what happened)."""
    try:
        loaded = load_system_dir(directory)
        result = solve(loaded.system)
        solution_table(loaded.system, result.solution, result.solver).encode("utf-8")
        json.dumps(solution_json(result.solution), allow_nan=False)
    except InfernoError:
        return "", ""
    except Exception as err:  # noqa: BLE001 - what the campaign is looking for
        where = traceback.extract_tb(err.__traceback__)[-1]
        return "crashes", f"{type(err).__name__}: {str(err)[:120]} at {where.filename}:{where.lineno}"
    absurd = _absurd(result)
    return ("absurd", absurd) if absurd else ("", "")


def run(seed: int, cases: int, budget_s: float = math.inf) -> Figures:
    """``cases`` mutated sample sets from ``seed`` (stopping early after ``budget_s`` seconds)."""
    rng = random.Random(seed)
    originals = {name: json.loads((SAMPLE / name).read_text()) for name in (*FILES.values(),)
                 if (SAMPLE / name).exists()}
    figures = Figures("data files")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-data-") as directory:
        for case in range(cases):
            if time.monotonic() - started > budget_s:
                break
            name = rng.choice(sorted(originals))
            data = copy.deepcopy(originals[name])
            changes = [_mutate_tree(data, rng) for _ in range(rng.randint(1, 3))]
            raw, extra = _render(data, rng)
            for other, content in originals.items():
                Path(directory, other).write_text(json.dumps(content))
            Path(directory, name).write_bytes(raw)
            kind, what = run_case(directory)
            figures.inputs += 1
            if kind:
                figures.found(kind, f"seed {seed} case {case}: {name} {'; '.join(changes)} {extra}: {what}")
    figures.elapsed_s = time.monotonic() - started
    return figures


if __name__ == "__main__":  # pragma: no cover - python -m fuzz.datafiles: a quick look
    print(run(int(os.environ.get("SEED", "1")), 200))
