"""``python -m benchmarks [NAME ...] [--quick] [--results DIR] [--docs FILE]``

Runs the benchmarks named (all by default), each in a fresh process, one after the
other. A full run writes ``benchmarks/results/NAME.json`` and updates the tables of
``docs/performance.md``; ``--quick`` (a few iterations, no thresholds: what CI runs)
writes nothing unless ``--results`` or ``--docs`` is given. ``overhead-httpx2`` is the
overhead benchmark with ``BENCH_LIB=httpx2`` (skipped where httpx2 is not installed),
``instructions-httpx2`` the instructions one.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import RESULTS, child_env, python_module
from .report import DOCS, render, update_doc

NAMES = (
    "overhead",
    "overhead-httpx2",
    "cold",
    "startup",
    "servers",
    "scale",
    "aiohttp_overhead",
    "requests_overhead",
    "instructions",
    "instructions-httpx2",
)

#: Names that run another benchmark's module with some environment.
VARIANTS = {
    "overhead-httpx2": ("overhead", {"BENCH_LIB": "httpx2"}),
    "instructions-httpx2": ("instructions", {"BENCH_LIB": "httpx2"}),
}
#: The module a benchmark needs, and that a run skips it without.
NEEDS = {"overhead-httpx2": "httpx2", "instructions-httpx2": "httpx2"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(NAMES))
    parser.add_argument("--quick", action="store_true", help="smoke mode")
    parser.add_argument("--results", type=Path, help="where the JSON results go")
    parser.add_argument("--docs", type=Path, help="the Markdown file to update")
    args = parser.parse_args(argv)
    names = args.names or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(
            f"unknown benchmark {unknown[0]!r}; choose from {', '.join(NAMES)}"
        )
    results = args.results
    docs = args.docs
    if not args.quick:
        results = results or RESULTS
        docs = docs or DOCS
    with tempfile.TemporaryDirectory(prefix="httptrace-bench-") as tmp:
        out_dir = results or Path(tmp)
        for name in names:
            needed = NEEDS.get(name)
            if needed is not None and importlib.util.find_spec(needed) is None:
                print(f"benchmarks: {name} skipped ({needed} is not installed)")
                continue
            started = time.perf_counter()
            print(f"benchmarks: {name} ...", flush=True)
            module, extra = VARIANTS.get(name, (name, {}))
            cmd = python_module(
                f"benchmarks.{module}", "--out", str(out_dir / f"{name}.json")
            )
            if args.quick:
                cmd.append("--quick")
            proc = subprocess.run(cmd, env=child_env(**extra))
            if proc.returncode != 0:
                print(f"benchmarks: {name} failed ({proc.returncode})", file=sys.stderr)
                return proc.returncode
            print(
                f"benchmarks: {name} done in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        if docs is not None:
            update_doc(docs, render(out_dir))
            print(f"benchmarks: tables updated in {docs}")
        if results is not None:
            print(f"benchmarks: results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
