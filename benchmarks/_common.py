"""Helpers shared by the benchmarks: statistics, run metadata, JSON output, processes.

Imports nothing from ``pytest_httptrace`` (see the package docstring).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

Result = dict[str, Any]

# Targets (issue 16), written into the results and read back by `benchmarks.report`
# (which falls back on these for results written before a target was recorded).

#: Keep-alive TLS GET, each variant / no plugin (`benchmarks.overhead`).
OVERHEAD_TARGETS = {
    "imported": 1.01,
    "idle": 1.01,
    "installed": 1.01,  # work for requests that carry no trace is not done
    "one": 1.02,  # work for hooks nobody set is not done
    "recording": 1.05,
}
#: First request of a new client, recorded / not (`benchmarks.cold`).
COLD_TARGET = 1.05
#: Memory held per recorded keep-alive request (`benchmarks.scale`).
MEMORY_TARGET_BYTES = 5000
#: The failure message of `assert_hook_sequence`, at any size of recording
#: (`benchmarks.scale`): windowed, it does not grow with the recording.
MESSAGE_TARGET_CHARS = 20_000


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread (quartiles, min, max) of ``values``, and how many."""
    if not values:
        raise ValueError("no values to summarise")
    ordered = sorted(values)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": statistics.median(ordered),
        "p25": q1,
        "p75": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def median_ci(
    values: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """A distribution-free confidence interval of the median: (low, high, coverage).

    The k-th smallest and k-th largest values, k the largest order for which the
    binomial coverage is at least ``level`` (10 values: the 2nd and 9th, 97.9 %). With
    too few values, the min and the max and their (lower) coverage.
    """
    ordered = sorted(values)
    n = len(ordered)
    k, coverage = 1, 1 - 2 * 0.5**n
    for j in range(2, n // 2 + 1):
        below = sum(math.comb(n, i) for i in range(j)) / 2**n
        if 1 - 2 * below < level:
            break
        k, coverage = j, 1 - 2 * below
    return ordered[k - 1], ordered[n - k], coverage


def ratio_summary(ratios: Sequence[float]) -> dict[str, float]:
    """Summary of paired ratios (one per round): median, min, max, and the confidence
    interval of the median (`median_ci`)."""
    s = summary(ratios)
    low, high, coverage = median_ci(ratios)
    return {
        "median": s["median"],
        "min": s["min"],
        "max": s["max"],
        "n": s["n"],
        "ci_low": low,
        "ci_high": high,
        "ci_coverage": coverage,
    }


def rotated(items: Sequence[str], round_no: int) -> list[str]:
    """``items`` rotated by ``round_no`` (variants take turns going first)."""
    k = round_no % len(items)
    return [*items[k:], *items[:k]]


def dist_versions(dists: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution, or ``"not installed"``."""
    found: dict[str, str] = {}
    for dist in dists:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "not installed"
    return found


def meta() -> dict[str, Any]:
    """What a result was measured on."""
    versions = dist_versions(
        (
            "pytest-httptrace",
            "httpx",
            "httpcore",
            "h2",
            "h11",
            "hypercorn",
            "pytest",
            "uvicorn",
            "pytest-httpserver",
            "werkzeug",
        )
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "commit": commit,
        "versions": versions,
    }


class WorkerProcess:
    """A client process of a benchmark (``python -m MODULE VARIANT URL CA WARMUP``)
    that answers JSON commands, one per line. ``tree``: a directory whose
    ``pytest_httptrace`` it imports instead of this checkout's."""

    def __init__(
        self,
        module: str,
        variant: str,
        url: str,
        ca: str,
        warmup: int,
        tree: str | None = None,
    ) -> None:
        self.variant = variant
        env = child_env()
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join((tree, env["PYTHONPATH"]))
        self.proc = subprocess.Popen(
            python_module(module, variant, url, ca, str(warmup)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def wait_ready(self) -> str | None:
        """Wait for the process; why the variant cannot run here, if it cannot."""
        ready = self._read()
        assert ready.get("ready") == self.variant, ready
        assert set(ready) <= {"ready", "not_applicable"}, ready
        reason: str | None = ready.get("not_applicable")
        return reason

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(
                f"client process {self.variant} exited with {self.proc.returncode}"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict[str, Any]:
        """Quit the process; what it reports, or its exit status if it died."""
        try:
            if self.proc.poll() is not None:
                return {"exited": self.proc.returncode}
            return self.ask({"cmd": "quit"})
        except (BrokenPipeError, RuntimeError):
            return {"exited": self.proc.wait(30)}
        finally:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
            self.proc.wait(30)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for benchmark subprocesses: no pytest variables (an xdist
    worker's would leak into them), the repository importable, no bytecode writes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def write_json(path: Path, data: Result) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


#: Seconds after which a smoke-mode run dumps every thread's stack and exits (the
#: smoke test waits `QUICK_DUMP_AFTER` + 20 s for it).
QUICK_DUMP_AFTER = 100


def bench_main(name: str, run: Callable[[bool], Result]) -> None:
    """Command line of one benchmark module: ``[--quick] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args()
    if args.quick:
        # Smoke mode runs under a test's timeout (tests/test_benchmarks_smoke.py): a
        # run that hangs says where, on stderr, before the test gives up on it.
        faulthandler.dump_traceback_later(QUICK_DUMP_AFTER, exit=True)
    started = time.perf_counter()
    result: Result = {"benchmark": name, "quick": args.quick, "meta": meta()}
    result.update(run(args.quick))
    result["seconds"] = round(time.perf_counter() - started, 2)
    if args.out is not None:
        write_json(args.out, result)
    else:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")


def ms(seconds: float) -> float:
    return seconds * 1e3
