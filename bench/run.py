"""Run the benchmarks: ``python -m bench.run [--only NAME] [--scale S]`` (``make bench``).

Every module of this package with a ``main(argv)`` is a benchmark, named after the module
(``population``, ``ingest``, …). ``--scale`` (default: the BENCH_SCALE environment variable,
else 1) shrinks or grows them all: 1 is each benchmark's full size, 0.01 a quick smoke run.
Results are JSON lines on stdout (see bench/README.md); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from collections.abc import Callable

import bench
from bench.common import bench_scale, note

#: Modules of the package that are helpers, not benchmarks.
HELPERS = {"common", "run", "support"}


def benchmarks() -> dict[str, Callable[[list[str]], None]]:
    """Benchmark name → its ``main``."""
    found: dict[str, Callable[[list[str]], None]] = {}
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name in HELPERS or module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"bench.{module.name}")
        entry = getattr(loaded, "main", None)
        if callable(entry):
            found[module.name] = entry
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this one")
    parser.add_argument(
        "--scale", type=float, default=None, help="size multiplier (default: BENCH_SCALE or 1)"
    )
    args, rest = parser.parse_known_args(argv)
    if args.scale is not None:
        if args.scale <= 0:
            parser.error("--scale must be greater than 0")
        # The benchmarks read their size from the environment, as when run on their own.
        os.environ["BENCH_SCALE"] = repr(args.scale)
    found = benchmarks()
    chosen = args.only or list(found)
    unknown = [name for name in chosen if name not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(found)}")
    for name in chosen:
        note(f"== {name} (BENCH_SCALE={bench_scale():g})")
        started = time.perf_counter()
        # Options meant for one benchmark (--only population --persons 10000) go to it.
        found[name](rest if len(chosen) == 1 else [])
        note(f"== {name} done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
