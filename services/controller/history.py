"""``python -m services.controller history``: the decisions recorded in the cycle log, over time, as tables.

Reads the cycle log (``--cycle-log``, default the INFERNO_CYCLE_LOG setting) and its rotated predecessor
``<path>.1`` (older lines first). Without ``--server`` each cycle is printed as the table /invoke's record
makes (one row per server); with ``--server NAME`` one table holds that server's row of every cycle, oldest
first. ``--last N`` keeps the newest N cycles. A line that is not a JSON record (a write cut short) is
reported on stderr and passed over. Exit 1 when the log is missing or names no such server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

from services.controller.report import cycle_text, server_history_text
from services.runtime.config import ConfigError, load_config


def read_records(path: str, err: TextIO) -> Iterator[dict[str, Any]]:
    """The records of ``path.1`` then ``path``, in order; bad lines are reported on ``err`` and skipped.

    Raises FileNotFoundError when neither file exists."""
    files = [p for p in (path + ".1", path) if os.path.exists(p)]
    if not files:
        raise FileNotFoundError(path)
    for name in files:
        with open(name, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    err.write(f"{name}:{number}: not a cycle record ({error.msg}); skipped\n")
                    continue
                if isinstance(record, dict) and "cycle_id" in record:
                    yield record
                else:
                    err.write(f"{name}:{number}: not a cycle record (no cycle_id); skipped\n")


def parser(default_log: str) -> argparse.ArgumentParser:
    """The history command line."""
    cli = argparse.ArgumentParser(prog="python -m services.controller history",
                                  description="Print the control loop's decisions over time from the cycle log.")
    cli.add_argument("--cycle-log", default=default_log, metavar="FILE",
                     help=f"the cycle log (default: INFERNO_CYCLE_LOG, now {default_log or 'unset'})")
    cli.add_argument("--server", metavar="NAME", help="one server's decisions, one row per cycle")
    cli.add_argument("--last", type=int, metavar="N", help="only the newest N cycles")
    cli.add_argument("--json", action="store_true", help="the records as JSON lines instead of tables")
    return cli


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr) -> int:
    """Run the command; returns the exit status (argparse exits 2 on a usage error)."""
    try:
        default_log = load_config(environ).cycle_log_path
    except ConfigError as error:
        err.write(f"history: error: {error}\n")
        return 1
    args = parser(default_log).parse_args(argv)
    if args.last is not None and args.last < 1:
        err.write(f"history: error: --last must be at least 1, got {args.last}\n")
        return 2
    if not args.cycle_log:
        err.write("history: error: no cycle log: give --cycle-log FILE or set INFERNO_CYCLE_LOG\n")
        return 1
    try:
        records = list(read_records(args.cycle_log, err))
    except FileNotFoundError:
        err.write(f"history: error: no cycle log at {args.cycle_log} (--cycle-log, INFERNO_CYCLE_LOG)\n")
        return 1
    if args.last is not None:
        records = records[-args.last:]
    if args.server is not None:
        known = sorted({row.get("server") for r in records for row in r.get("rows") or [] if row.get("server")})
        if args.server not in known:
            err.write(f"history: error: no server {args.server!r} in {args.cycle_log}; "
                      f"servers: {', '.join(known) or 'none'}\n")
            return 1
        records = [r for r in records if any(row.get("server") == args.server for row in r.get("rows") or [])]
    if args.json:
        out.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
    elif args.server is not None:
        out.write(server_history_text(records, args.server) + "\n")
    else:
        out.write("\n\n".join(cycle_text(r) for r in records) + ("\n" if records else "no cycles recorded\n"))
    return 0
