"""Benchmark 3: what the plugin adds to the start of every pytest run.

``python -m benchmarks.startup [--quick] [--out FILE]``

1. ``python -X importtime -c "import pytest, pytest_httptrace.plugin"``: the plugin's
   own cumulative import time, once pytest is imported (the sum of the top-level
   entries after ``pytest``). A second command adds ``pytest_httptrace._recording``,
   which the plugin's ``pytest_configure`` imports: what a run really loads.
2. Wall time of ``python -m pytest --collect-only -q`` on a generated 200-test suite
   (its own ``pytest.ini``, ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``) with ``-p httptrace``
   and with ``-p no:httptrace``, alternating, after one untimed run of each (so the
   test files' bytecode is cached); also the CPU time of those runs (user + system,
   less disturbed by other processes than the wall time).

3. What a test pays for the ``httptrace_recorder`` fixture: wall time of ``python -m
   pytest -q -p httptrace`` on 500 empty tests that request the fixture, against 500
   that do not, alternating; the difference divided by 500 is the per-test cost
   (starting a recorder installs the instrumentation, stopping it removes it, and the
   leak check runs at teardown). And, in this process, what one ``Recorder.start()`` +
   ``stop()`` costs, and the httpx/httpcore version check each start makes.

Full run: 15 import samples each, 20 collection runs each, 8 runs of each 500-test
suite.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import Result, bench_main, child_env, ratio_summary, rotated, summary

IMPORTS = {
    "plugin": "import pytest, pytest_httptrace.plugin",
    "plugin+configure": (
        "import pytest, pytest_httptrace.plugin, pytest_httptrace._recording"
    ),
}
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( +)(\S+)\s*$")
FILES, TESTS_PER_FILE = 10, 20


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """(cumulative ms of everything imported after the top-level ``pytest`` entry,
    self ms of each ``pytest_httptrace`` module)."""
    seen_pytest = False
    total_us = 0
    own: dict[str, float] = {}
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        self_us, cumulative_us, indent, name = m.groups()
        top_level = len(indent) == 1
        if name.startswith("pytest_httptrace"):
            own[name] = int(self_us) / 1e3
        if top_level and name == "pytest":
            seen_pytest = True
        elif top_level and seen_pytest:
            total_us += int(cumulative_us)
    if not seen_pytest:
        raise RuntimeError(f"no 'pytest' entry in -X importtime output:\n{stderr}")
    return total_us / 1e3, own


def _importtime(code: str) -> tuple[float, dict[str, float]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=True,
    )
    return parse_importtime(proc.stderr)


def make_suite(root: Path) -> None:
    """200 tests in 10 files: functions, a class, parametrized tests, a fixture."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef number():\n    return 1\n"
    )
    for f in range(FILES):
        lines = ["import pytest", ""]
        lines += [
            f"def test_plain_{i}(number):\n    assert number == 1\n" for i in range(10)
        ]
        lines.append("class TestGroup:")
        lines += [
            f"    def test_method_{i}(self):\n        assert True\n" for i in range(5)
        ]
        lines.append('@pytest.mark.parametrize("x", range(5))')
        lines.append("def test_param(x):\n    assert x >= 0\n")
        (root / f"test_generated_{f}.py").write_text("\n".join(lines))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _collect(root: Path, plugin_arg: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one collection run."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", plugin_arg],
        cwd=root,
        capture_output=True,
        text=True,
        env=child_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        timeout=120,
    )
    elapsed = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    expected = f"{FILES * TESTS_PER_FILE} tests collected"
    if proc.returncode != 0 or expected not in proc.stdout:
        raise RuntimeError(
            f"pytest --collect-only -p {plugin_arg} failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return elapsed, cpu


FIXTURE_TESTS = 500


def make_fixture_suites(root: Path, tests: int) -> None:
    """``with/``: tests that request ``httptrace_recorder``; ``without/``: the same
    tests without it."""
    for name, args in (("with", "httptrace_recorder, i"), ("without", "i")):
        suite = root / name
        suite.mkdir()
        (suite / "pytest.ini").write_text("[pytest]\n")
        (suite / "test_fixture_cost.py").write_text(
            "import pytest\n\n\n"
            f'@pytest.mark.parametrize("i", range({tests}))\n'
            f"def test_empty({args}):\n    pass\n"
        )


def _run_suite(root: Path, tests: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "httptrace",
            "-p",
            "no:cacheprovider",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=child_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        timeout=300,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or f"{tests} passed" not in proc.stdout:
        raise RuntimeError(
            f"pytest in {root} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
        )
    return elapsed


def recorder_cycle(repeat: int) -> dict[str, float]:
    """In this process: ms of ``Recorder.start()`` + ``stop()`` (install and remove
    the instrumentation), and of the version check that every install makes."""
    import statistics

    import httpx

    from pytest_httptrace import Recorder
    from pytest_httptrace.httpx_trace import _flavour

    assert httpx  # the library under test is imported, as in a test
    Recorder.start().stop()  # imports
    flavour = _flavour.load("httpx")
    cycles, checks = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        Recorder.start().stop()
        t1 = time.perf_counter()
        flavour.check_versions()
        t2 = time.perf_counter()
        cycles.append((t1 - t0) * 1e3)
        checks.append((t2 - t1) * 1e3)
    return {
        "start_stop_ms": statistics.median(cycles),
        "check_versions_ms": statistics.median(checks),
    }


def fixture_cost(rounds: int, tests: int, warm: bool) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory(prefix="httptrace-bench-fixture-") as tmp:
        root = Path(tmp)
        make_fixture_suites(root, tests)
        for name in runs if warm else ():
            _run_suite(root / name, tests)  # untimed: bytecode caches
        for r in range(rounds):
            for name in rotated(list(runs), r):
                runs[name].append(_run_suite(root / name, tests))
    with_s, without_s = summary(runs["with"]), summary(runs["without"])
    paired = [
        (a - b) / tests * 1e3
        for a, b in zip(runs["with"], runs["without"], strict=True)
    ]
    return {
        "tests": tests,
        "command": "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q -p httptrace "
        f"({tests} empty tests with / without httptrace_recorder)",
        "with_ms": with_s["median"] * 1e3,
        "without_ms": without_s["median"] * 1e3,
        "per_test_ms": (with_s["median"] - without_s["median"]) / tests * 1e3,
        "per_test_round_ms": ratio_summary(paired),
    }


def run(quick: bool) -> Result:
    import_samples, collect_rounds = (1, 1) if quick else (15, 20)
    fixture_rounds, fixture_tests = (1, 20) if quick else (8, FIXTURE_TESTS)
    imports: dict[str, list[float]] = {k: [] for k in IMPORTS}
    own: dict[str, list[float]] = {}
    for r in range(import_samples):
        for name in rotated(list(IMPORTS), r):
            total, modules = _importtime(IMPORTS[name])
            imports[name].append(total)
            if name == "plugin":
                for module, self_ms in modules.items():
                    own.setdefault(module, []).append(self_ms)
    import_rows = [
        {
            "what": name,
            "command": f'python -X importtime -c "{IMPORTS[name]}"',
            "ms": summary(values),
            "target_ms": 15.0 if name == "plugin" else None,
        }
        for name, values in imports.items()
    ]
    module_self_ms = {m: summary(v)["median"] for m, v in own.items()}

    variants = {"with": "httptrace", "without": "no:httptrace"}
    collect: dict[str, list[float]] = {k: [] for k in variants}
    collect_cpu: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory(prefix="httptrace-bench-suite-") as tmp:
        root = Path(tmp)
        make_suite(root)
        for arg in variants.values() if not quick else ():
            _collect(root, arg)  # untimed: bytecode caches, page cache
        for r in range(collect_rounds):
            for name in rotated(list(variants), r):
                wall, cpu = _collect(root, variants[name])
                collect[name].append(wall)
                collect_cpu[name].append(cpu)
    paired = [a / b for a, b in zip(collect["with"], collect["without"], strict=True)]
    with_s, without_s = summary(collect["with"]), summary(collect["without"])
    cpu_with, cpu_without = (
        summary(collect_cpu["with"]),
        summary(collect_cpu["without"]),
    )
    collect_row: dict[str, Any] = {
        "tests": FILES * TESTS_PER_FILE,
        "command": "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest --collect-only "
        "-q -p httptrace | -p no:httptrace",
        "with_ms": {k: v * 1e3 if k != "n" else v for k, v in with_s.items()},
        "without_ms": {k: v * 1e3 if k != "n" else v for k, v in without_s.items()},
        "ratio": with_s["median"] / without_s["median"],
        "round_ratio": ratio_summary(paired),
        "cpu_with_ms": cpu_with["median"] * 1e3,
        "cpu_without_ms": cpu_without["median"] * 1e3,
        "cpu_ratio": cpu_with["median"] / cpu_without["median"],
        "target": 1.05,
    }
    return {
        "imports": import_rows,
        "module_self_ms": module_self_ms,
        "collect": collect_row,
        "fixture": fixture_cost(fixture_rounds, fixture_tests, warm=not quick),
        "recorder_cycle": recorder_cycle(5 if quick else 200),
    }


if __name__ == "__main__":
    bench_main("startup", run)
