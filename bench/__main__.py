"""`make bench`: every benchmark module, one call each (add yours as one line)."""

from __future__ import annotations

from bench import optimizer_bench

optimizer_bench.run()
