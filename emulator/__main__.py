"""Command line of the local cluster: ``up`` (start a cluster from a config) and ``loadgen`` (drive a server).

    python -m emulator up --config emulator/examples/small3.yaml [--no-load] [--duration S]
    python -m emulator loadgen --url http://127.0.0.1:PORT [--url ...] --rate 1 --duration 30 \
        [--stairs FROM:TO:STEP:EVERY] [--in 128] [--out 64] [--slo-ttft MS] [--slo-itl MS]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

import yaml

from emulator.cluster import Cluster
from emulator.loadgen import LoadGenerator, Target
from emulator.loadshape import Schedule, constant, parse_length, stairs


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
        if not args.no_load and cluster.config.get("loads"):
            cluster.start_load()
            print("load: started", flush=True)
        stop.wait(args.duration if args.duration > 0 else None)
        if cluster.load is not None:
            cluster.load.stop()
            print(json.dumps(cluster.load.reports(), indent=1), flush=True)
    print("stopped", flush=True)
    return 0


def _loadgen(args: argparse.Namespace) -> int:
    if args.stairs:
        start, end, step, every = (float(x) for x in args.stairs.split(":"))
        schedule = Schedule(stairs(start, end, step, every))
    else:
        schedule = constant(args.rate, args.duration)
    target = Target("cli", args.url, schedule, parse_length(args.in_tokens, minimum=0), parse_length(args.out_tokens),
                    model=args.model, slo_ttft_ms=args.slo_ttft, slo_itl_ms=args.slo_itl)
    result = LoadGenerator([target], seed=args.seed, max_requests=args.max_requests).run()
    print(json.dumps(result["cli"], indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster from a YAML/JSON description")
    up.add_argument("--config", required=True)
    up.add_argument("--no-load", action="store_true", help="do not start the configured loads")
    up.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: on a signal)")
    up.set_defaults(run=_up)
    load = sub.add_parser("loadgen", help="send Poisson load to replica URLs")
    load.add_argument("--url", action="append", required=True)
    load.add_argument("--rate", type=float, default=1.0, help="req/s")
    load.add_argument("--duration", type=float, default=30.0, help="seconds")
    load.add_argument("--stairs", help="FROM:TO:STEP:EVERY (req/s, req/s, req/s, s), instead of --rate")
    load.add_argument("--in", dest="in_tokens", type=int, default=128)
    load.add_argument("--out", dest="out_tokens", type=int, default=64)
    load.add_argument("--model")
    load.add_argument("--slo-ttft", type=float, default=0.0, help="ms")
    load.add_argument("--slo-itl", type=float, default=0.0, help="ms")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--max-requests", type=int, default=100_000)
    load.set_defaults(run=_loadgen)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
