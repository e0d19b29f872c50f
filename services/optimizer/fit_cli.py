"""`python -m services.optimizer fit FILE...`: fit (or, with --params, evaluate) perfParms on GuideLLM benchmark
reports of one model on one accelerator, print measured vs predicted TTFT/ITL per rate and the errors, and
write or merge the perfParms entry of model-data.json (docs/model.md s11)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from services.core.errors import InvalidInputError
from services.core.model import PerfParms, ServiceModel
from services.optimizer.guidellm import BenchmarkPoint, read_points
from services.perfmodel.fit import FitOptions, FitResult, Point, evaluate, fit, fits_overhead
from services.perfmodel.servicetime import TOKEN_BUDGET

DESCRIPTION = """Fit the perfParms alpha, beta, gamma (ms per iteration, per computed token, per KV-cache token read;
with model v1 also the client's TTFT overhead) of the chosen service model to GuideLLM rate sweeps of one model on
one accelerator: GuideLLM's native JSON report (benchmarks.json), its CSV export, or the flattened JSON of that
export. Several files are fitted jointly. Each steady-rate benchmark (synchronous, constant, poisson) is one point;
throughput and concurrency runs are not steady rates and are left out. The fit minimises the squared relative
errors of mean TTFT and mean ITL (scipy least_squares, bounded). With --params the given parameters are evaluated
on the files without fitting: that is how an out-of-sample error is measured. Errors: mean |pred - meas| / mean
meas over the points (the MASCOTS paper's metric) and the median |pred - meas| / meas."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``fit`` subcommand on the optimizer CLI's subparsers."""
    cmd = sub.add_parser("fit", help="fit perfParms to GuideLLM benchmark reports and print the errors",
                         description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("files", nargs="+", metavar="FILE", help="GuideLLM report: benchmarks.json, CSV export, or "
                     "the flattened JSON of the CSV export")
    cmd.add_argument("--service-model", choices=[m.value for m in ServiceModel if m != ServiceModel.AUTO],
                     default=ServiceModel.V1.value, help="service-time model to fit (default: %(default)s)")
    cmd.add_argument("--params", metavar="ALPHA,BETA,GAMMA[,OVERHEAD]",
                     help="evaluate these perfParms (ms; OVERHEAD the v1 TTFT overhead, default 0) instead of fitting")
    cmd.add_argument("--max-batch", type=int, default=512,
                     help="vLLM --max-num-seqs of the measured server (default: %(default)s)")
    cmd.add_argument("--token-budget", type=int, default=TOKEN_BUDGET,
                     help="vLLM --max-num-batched-tokens of the measured server (default: %(default)s)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    cmd.add_argument("--output", metavar="MODEL_DATA_JSON",
                     help="write the perfParms into this model-data.json (created, or merged into the entry of "
                          "--model on --accelerator, other entries kept); needs --model and --accelerator")
    cmd.add_argument("--model", help="model name of the model-data.json entry")
    cmd.add_argument("--accelerator", help="accelerator name of the model-data.json entry")


def _params(text: str) -> PerfParms:
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) not in (3, 4) or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InvalidInputError(f"--params must be ALPHA,BETA,GAMMA[,OVERHEAD], numbers >= 0, got {text!r}")
    return PerfParms(*values)


def _check(args: argparse.Namespace) -> None:
    if args.max_batch < 1 or args.token_budget < 1:
        raise InvalidInputError(f"--max-batch and --token-budget must be >= 1, got {args.max_batch}, "
                                f"{args.token_budget}")
    if args.output and not (args.model and args.accelerator):
        raise InvalidInputError("--output needs --model and --accelerator (the model-data.json entry to write)")
    if args.output and os.path.isdir(args.output):
        raise InvalidInputError(f"--output {args.output!r} is a directory; give a file path")
    if args.output and not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise InvalidInputError(f"--output {args.output!r}: directory {os.path.dirname(args.output)!r} does not exist")


def as_point(bench: BenchmarkPoint) -> Point:
    """The model's view of a steady-rate benchmark: a synchronous run is one request at a time (rate 0)."""
    rate = 0.0 if bench.strategy == "synchronous" else bench.rate_rps
    return Point(rate, bench.in_tokens, bench.out_tokens, bench.out_c2, bench.arrival_c2, bench.ttft_ms, bench.itl_ms)


def steady_points(files: list[str]) -> list[BenchmarkPoint]:
    """The steady-rate benchmarks of ``files``; GuideLLMError names a bad file, InvalidInputError says when
    none of them holds one."""
    benches = [b for f in files for b in read_points(f) if b.steady_rate]
    if not benches:
        raise InvalidInputError(f"no steady-rate benchmark (synchronous, constant, poisson) in {', '.join(files)}")
    return benches


def _number(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


def result_json(benches: list[BenchmarkPoint], result: FitResult, model: ServiceModel, fitted: bool) -> dict[str, Any]:
    """The --json object: perfParms (ms), the points, and the errors (``error`` the paper's metric)."""
    perf = result.perf
    return {
        "service_model": model.value, "fitted": fitted,
        "alpha": float(perf.alpha_ms), "beta": float(perf.beta_ms), "gamma": float(perf.gamma_ms),
        "ttft_overhead_ms": float(perf.ttft_overhead_ms),
        "points": [{"file": b.file, "strategy": b.strategy, "rate_rps": _number(b.rate_rps),
                    "in_tokens": _number(b.in_tokens), "out_tokens": _number(b.out_tokens),
                    "ttft_ms": _number(b.ttft_ms), "ttft_ms_pred": _number(result.ttft_ms[k]),
                    "itl_ms": _number(b.itl_ms), "itl_ms_pred": _number(result.itl_ms[k])}
                   for k, b in enumerate(benches)],
        "error": {"ttft": _number(result.ttft_error.ratio_of_means), "itl": _number(result.itl_error.ratio_of_means)},
        "error_median": {"ttft": _number(result.ttft_error.median_ape), "itl": _number(result.itl_error.median_ape)},
    }


def _pct(pred: float, meas: float) -> str:
    return f"{pred / meas - 1:+7.1%}" if math.isfinite(meas) and meas > 0 and math.isfinite(pred) else "      -"


def result_text(benches: list[BenchmarkPoint], result: FitResult, model: ServiceModel, fitted: bool) -> str:
    """The per-point table and the error lines."""
    lines = [f"{'file':<28} {'strategy':<11} {'rate/s':>7} {'in':>6} {'out':>6} {'TTFT ms':>8} {'pred':>8} "
             f"{'err':>7} {'ITL ms':>7} {'pred':>7} {'err':>7}"]
    for k, b in enumerate(benches):
        lines.append(f"{Path(b.file).name[-28:]:<28} {b.strategy:<11} {b.rate_rps:7.3f} {b.in_tokens:6.0f} "
                     f"{b.out_tokens:6.0f} {b.ttft_ms:8.1f} {result.ttft_ms[k]:8.1f} "
                     f"{_pct(result.ttft_ms[k], b.ttft_ms)} {b.itl_ms:7.2f} {result.itl_ms[k]:7.2f} "
                     f"{_pct(result.itl_ms[k], b.itl_ms)}")
    p = result.perf
    kind = "in-sample (fitted on these points)" if fitted else "out-of-sample (--params, not fitted here)"
    overhead = f", TTFT overhead {p.ttft_overhead_ms:.3f} ms" if model == ServiceModel.V1 else ""
    lines += [f"model {model.value}: alpha {p.alpha_ms:.4f} ms, beta {p.beta_ms:.6g} ms, gamma {p.gamma_ms:.6g} ms"
              f"{overhead}",
              f"error, {kind}, over {len(benches)} points: TTFT {result.ttft_error.ratio_of_means:.1%} "
              f"(median {result.ttft_error.median_ape:.1%}), ITL {result.itl_error.ratio_of_means:.1%} "
              f"(median {result.itl_error.median_ape:.1%}); mean |pred - meas| / mean meas"]
    return "\n".join(lines) + "\n"


def merge_model_data(path: str, model: str, accelerator: str, perf: PerfParms, max_batch: int, at_tokens: int) -> str:
    """Write ``perf`` into the perfParms of (``model``, ``accelerator``) in model-data.json at ``path``: the
    entry is updated in place (keys matched case-insensitively, its other fields kept), or added with
    accCount 1, maxBatchSize ``max_batch`` and atTokens ``at_tokens``; the file is created when missing.
    Returns "updated", "added" or "created". Replaced atomically. InvalidInputError for a file that is not
    model data."""
    target = Path(path)
    status = "created"
    data: dict[str, Any] = {"models": []}
    if target.exists():
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidInputError(f"--output {path!r}: not readable JSON: {err}") from None
        models_key = next((k for k in data if k.lower() == "models"), None) if isinstance(data, dict) else None
        if models_key is None or not isinstance(data[models_key], list):
            raise InvalidInputError(f"--output {path!r}: not a model-data.json (expected an object with 'models')")
        data["models"] = data.pop(models_key)
        status = "added"
    parms: dict[str, Any] = {"alpha": float(perf.alpha_ms), "beta": float(perf.beta_ms), "gamma": float(perf.gamma_ms)}
    if perf.ttft_overhead_ms:
        parms["ttftOverhead"] = float(perf.ttft_overhead_ms)
    for entry in data["models"]:
        keys = {k.lower(): k for k in entry} if isinstance(entry, dict) else {}
        if entry.get(keys.get("name", "name")) == model and entry.get(keys.get("acc", "acc")) == accelerator:
            entry.pop(keys.get("perfparms", "perfParms"), None)
            entry["perfParms"] = parms
            status = "updated"
            break
    else:
        data["models"].append({"name": model, "acc": accelerator, "accCount": 1, "maxBatchSize": max_batch,
                               "atTokens": at_tokens, "perfParms": parms})
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(out.name, path)
    return status


def run(args: argparse.Namespace) -> int:
    """Run ``fit``; returns the exit status (errors raise InfernoError, printed by the caller)."""
    _check(args)
    model = ServiceModel(args.service_model)
    options = FitOptions(model, args.max_batch, args.token_budget)
    benches = steady_points(args.files)
    points = [as_point(b) for b in benches]
    if args.params:
        result, fitted = evaluate(points, _params(args.params), options), False
    else:
        result, fitted = fit(points, options), True
    if not fits_overhead(options):
        result = evaluate(points, PerfParms(result.perf.alpha_ms, result.perf.beta_ms, result.perf.gamma_ms), options)
    if args.json:
        print(json.dumps(result_json(benches, result, model, fitted)))
    else:
        print(result_text(benches, result, model, fitted), end="")
    if args.output:
        at_tokens = max(round(sum(b.out_tokens for b in benches) / len(benches)), 1)
        status = merge_model_data(args.output, args.model, args.accelerator, result.perf, args.max_batch, at_tokens)
        print(f"perfParms of {args.model} on {args.accelerator} {status} in {args.output}",
              file=sys.stderr if args.json else sys.stdout)
    return 0
