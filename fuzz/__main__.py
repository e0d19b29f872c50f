"""`make fuzz`: the long fuzz and fault campaigns; `python -m fuzz --help` for the options.

Prints one row per campaign (inputs tried, crashes, INTERNAL answers, absurd results or writes, seconds) and
the first findings of each kind; exits 1 when anything was found.
"""

from __future__ import annotations

import argparse
import logging
import sys

import structlog

from fuzz import campaigns
from fuzz.figures import table


def main(argv: list[str]) -> int:
    """Run the chosen campaigns and print their figures; 0 when all are clean."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"campaigns to run (default all): {', '.join(campaigns.TARGETS)}")
    parser.add_argument("--seed", type=int, default=1, help="seed of every campaign (default 1)")
    parser.add_argument("--short", action="store_true", help="the short form `make test` runs (seconds)")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds each campaign may run at most (default 600)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in campaigns.TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(campaigns.TARGETS)}")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    sizes = campaigns.SHORT if args.short else campaigns.LONG
    rows = []
    for target in args.targets or list(campaigns.TARGETS):
        figures = campaigns.TARGETS[target](args.seed, sizes[target], args.budget)
        rows.append(figures)
        print(table([figures]).splitlines()[2], flush=True)
    print()
    print(table(rows), end="")
    return 0 if all(f.clean for f in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
