r"""Command line of the local cluster: ``up`` (start a cluster from a config) and ``loadgen`` (drive a server).

    python -m emulator up --config emulator/examples/small3.yaml [--no-load] [--duration S] [--json]
    python -m emulator loadgen --url http://127.0.0.1:PORT [--url ...] --rate 1 --duration 30 \
        [--stairs FROM:TO:STEP:EVERY] [--in 128] [--out 64] [--slo-ttft MS] [--slo-itl MS] [--seed N] [--json]
        [--priority N | --updates FILE [--last S]]

--priority sends vLLM's request field ``priority`` (lower first; the replica must run --scheduling-policy
priority). --updates FILE sends the seeds' update schedule ({"updates": [{"time", "request_rates": [RPM per
class]}]}, classes in priority order, optional "classes" names) instead of --rate: one load per class with
priority = its position, each update's rates holding until the next and the last for --last seconds.

--in and --out take a token-length distribution: N (fixed), exponential:MEAN[:MIN:MAX], uniform:LOW:HIGH or
file:PATH (a number per line or a JSON list, drawn uniformly); lengths and arrivals are seeded by --seed.

While ``up`` runs it prints what happens in the cluster: Deployments scaled, replicas (endpoints) ready or
removed, Events. loadgen, and ``up`` when its loads stop, print the load report as a table (latencies in ms;
--json: the report as JSON). loadgen exits 1 when no request completed (the report is printed anyway).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from collections.abc import Callable

import yaml

from emulator.cluster import Cluster
from emulator.clusterlog import ClusterLog
from emulator.loadgen import LoadGenerator, Target
from emulator.loadreport import report_json, report_text
from emulator.loadshape import LENGTH_FORMS, Length, Schedule, constant, length_arg, stairs, update_schedules


def _number(kind: str, low: float, *, strict: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (``strict``) or at least ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({kind})") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'>' if strict else '>='} {low:g} ({kind})")
        return value

    return parse


def _integer(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {low}")
        return value

    return parse


def _length(minimum: int) -> Callable[[str], Length]:
    """An argparse type: a token-length distribution (LENGTH_FORMS) whose lengths are >= ``minimum``."""

    def parse(text: str) -> Length:
        try:
            return length_arg(text, minimum)
        except (ValueError, OSError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


STAIRS_FORM = "FROM:TO:STEP:EVERY (req/s, req/s, req/s, s)"


def _stairs(text: str) -> tuple[float, float, float, float]:
    """An argparse type: FROM:TO:STEP:EVERY, rates >= 0 (not both 0), STEP != 0 going from FROM to TO,
    EVERY > 0 seconds."""
    parts = text.split(":")
    try:
        start, end, step, every = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form {STAIRS_FORM}") from None
    if not all(math.isfinite(x) for x in (start, end, step, every)):
        raise argparse.ArgumentTypeError(f"{text!r}: every part of {STAIRS_FORM} must be a finite number")
    if min(start, end) < 0 or max(start, end) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: FROM and TO must be >= 0 and not both 0 ({STAIRS_FORM})")
    if step == 0 or (end - start) * step < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: STEP must be non-zero and go from FROM towards TO "
                                         f"({STAIRS_FORM})")
    if every <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: EVERY must be > 0 seconds ({STAIRS_FORM})")
    return start, end, step, every


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cluster = Cluster.from_file(args.config)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
        print(f"emulator up: bad cluster config {args.config}: {error}", file=sys.stderr)
        return 2
    with cluster:
        print(f"kubeconfig: {cluster.kubeconfig_path}", flush=True)
        print(f"prometheus: {cluster.prometheus_url or '(not installed; scrape the pods directly)'}", flush=True)
        for obj in cluster.deployments:
            namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            print(f"endpoints {namespace}/{name}: {' '.join(cluster.endpoints(namespace, name))}", flush=True)
        watching = ClusterLog(cluster.store, lambda line: print(line, flush=True))
        if not args.no_load and cluster.config.get("loads"):
            cluster.start_load()
            print("load: started", flush=True)
        else:
            print("load: none (--no-load, or no loads in the config)", flush=True)
        stop.wait(args.duration if args.duration > 0 else None)
        watching.close()
        if cluster.load is not None:
            cluster.load.stop()
            reports = cluster.load.reports()
            print(report_json(reports) if args.json else report_text(reports), flush=True)
    print("stopped", flush=True)
    return 0


def _class_targets(args: argparse.Namespace) -> list[Target]:
    try:
        with open(args.updates) as handle:
            doc = json.load(handle)
        schedules = update_schedules(doc.get("updates") if isinstance(doc, dict) else None, args.last)
    except (OSError, ValueError, AttributeError) as error:
        raise SystemExit(f"emulator loadgen: --updates {args.updates}: {error}") from None
    names = doc.get("classes") or [f"class{c + 1}" for c in range(len(schedules))]
    if len(names) != len(schedules):
        raise SystemExit(f"emulator loadgen: --updates {args.updates}: {len(names)} class names for "
                         f"{len(schedules)} classes")
    return [Target(str(name), args.url, schedule, args.in_tokens, args.out_tokens, model=args.model,
                   slo_ttft_ms=args.slo_ttft, slo_itl_ms=args.slo_itl, priority=c)
            for c, (name, schedule) in enumerate(zip(names, schedules, strict=True))]


def _loadgen(args: argparse.Namespace) -> int:
    if args.updates:
        targets = _class_targets(args)
    else:
        schedule = Schedule(stairs(*args.stairs)) if args.stairs else constant(args.rate, args.duration)
        targets = [Target("cli", args.url, schedule, args.in_tokens, args.out_tokens, model=args.model,
                          slo_ttft_ms=args.slo_ttft, slo_itl_ms=args.slo_itl, priority=args.priority)]
    reports = LoadGenerator(targets, seed=args.seed, max_requests=args.max_requests).run()
    if len(reports) == 1:
        report = reports["cli"] if "cli" in reports else next(iter(reports.values()))
        print(report_json(report) if args.json else report_text(reports), flush=True)
    else:
        print(report_json(reports) if args.json else report_text(reports), flush=True)
        report = {"completed": sum(r["completed"] for r in reports.values()),
                  "sent": sum(r["sent"] for r in reports.values()),
                  "errors": {e: n for r in reports.values() for e, n in r["errors"].items()}}
    if report["completed"] == 0:
        reasons = ", ".join(f"{error} x{count}" for error, count in report["errors"].items()) or "none sent"
        print(f"emulator loadgen: no request completed ({report['sent']} sent; failures: {reasons})",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster from a YAML/JSON description")
    up.add_argument("--config", required=True)
    up.add_argument("--no-load", action="store_true", help="do not start the configured loads")
    up.add_argument("--duration", type=_number("seconds", 0, strict=False), default=0.0,
                    help="stop after this many seconds (0: on a signal)")
    up.add_argument("--json", action="store_true", help="the final load report as JSON instead of a table")
    up.set_defaults(run=_up)
    load = sub.add_parser("loadgen", help="send Poisson load to replica URLs (exit 1 when none completed)")
    load.add_argument("--url", action="append", required=True)
    load.add_argument("--rate", type=_number("req/s", 0, strict=True), default=1.0, help="req/s, > 0")
    load.add_argument("--duration", type=_number("seconds", 0, strict=True), default=30.0, help="seconds, > 0")
    load.add_argument("--stairs", type=_stairs, metavar="FROM:TO:STEP:EVERY",
                      help=f"{STAIRS_FORM}, instead of --rate and --duration")
    load.add_argument("--in", dest="in_tokens", type=_length(0), default=Length("fixed", 128, 0, 128),
                      metavar="LENGTH", help=f"prompt tokens, >= 0: {LENGTH_FORMS} (default 128)")
    load.add_argument("--out", dest="out_tokens", type=_length(1), default=Length("fixed", 64, 1, 64),
                      metavar="LENGTH", help=f"output tokens, >= 1: {LENGTH_FORMS} (default 64)")
    load.add_argument("--model")
    load.add_argument("--slo-ttft", type=_number("ms", 0, strict=False), default=0.0, help="ms (0: none)")
    load.add_argument("--slo-itl", type=_number("ms", 0, strict=False), default=0.0, help="ms (0: none)")
    load.add_argument("--seed", type=int, default=0, help="seeds the arrivals and the token lengths")
    load.add_argument("--max-requests", type=_integer(1), default=100_000)
    classes = load.add_mutually_exclusive_group()
    classes.add_argument("--priority", type=int, help="vLLM's request priority to send (lower first)")
    classes.add_argument("--updates", metavar="FILE", help="the seeds' per-class update schedule (see above)")
    load.add_argument("--last", type=_number("seconds", 0, strict=True), default=600.0,
                      help="with --updates: seconds the last update holds (default 600)")
    load.add_argument("--json", action="store_true", help="the report as JSON instead of a table")
    load.set_defaults(run=_loadgen)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
