"""The benchmarks in smoke mode: they run, produce every row, and render.

No thresholds (figures from a loaded CI machine mean nothing): only that each
benchmark still works end to end, so that it cannot rot between full runs
(``python -m benchmarks``, see docs/performance.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks._common import QUICK_DUMP_AFTER, ROOT, child_env
from benchmarks.startup import parse_importtime

NAMES = (
    "overhead",
    "cold",
    "startup",
    "servers",
    "scale",
    "aiohttp_overhead",
    "requests_overhead",
    "instructions",
)


def _numbers(value: Any) -> list[float]:
    """Every number in a JSON value."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


OVERHEAD_VARIANTS = [
    "none",
    "none_b",
    "imported",
    "idle",
    "installed",
    "one",
    "recording",
    "httpcore_noop",
    "otel",
]


def _expected_overhead(result: dict[str, Any]) -> None:
    assert result["variants"] == OVERHEAD_VARIANTS
    assert [(r["config"], r["variant"]) for r in result["rows"]] == [
        (c, v) for c in result["configs"] for v in OVERHEAD_VARIANTS
    ]
    # Every variant measured, the anchors too (the installed OpenTelemetry
    # instrumentation traces httpx and httpx2 alike).
    assert result["not_applicable"] == {}
    recording = [r for r in result["rows"] if r["variant"] == "recording"]
    assert all(r["events_per_request"] >= 10 for r in recording)
    otel = [r for r in result["rows"] if r["variant"] == "otel"]
    assert all(r["spans_per_request"] == 1 for r in otel)
    targets = {r["variant"]: r["target"] for r in result["rows"]}
    assert targets["one"] == 1.02
    assert targets["installed"] == 1.01
    assert targets["httpcore_noop"] is None
    assert targets["otel"] is None
    checks = result["process_checks"]
    assert checks["one"]["instrumentation_installed"] is True
    for anchor in ("httpcore_noop", "otel"):
        assert checks[anchor]["plugin_imported"] is False
    assert checks["otel"]["otel_imported"] is True
    assert [r["variant"] for r in result["decompose"]] == [
        "shipped",
        "installed",
        "empty trace",
        "one hook",
        "recorder",
    ] * len(result["configs"])
    table = report.render_overhead(result)
    assert "one hook set (`got_conn`), in effect here" in table
    assert "anchor: OpenTelemetry httpx instrumentation (1 span/request)" in table
    assert "anchor: httpcore's `trace` extension, no-op callback" in table
    assert "µs each over the empty trace" in table
    summary = report.render_summary({"overhead": result})
    lib = result["lib"]
    for label in (
        f"({lib}), instrumentation installed, this request untraced / no plugin "
        "| ≤ 1.01",
        f"({lib}), one hook set (`got_conn`), in effect here / no plugin | ≤ 1.02",
        f"({lib}), every hook recording / no plugin | ≤ 1.05",
        "beside it OpenTelemetry ",
        ", httpcore no-op trace ",
    ):
        assert label in summary


def _expected_rows(name: str, result: dict[str, Any]) -> None:
    if name == "overhead":
        _expected_overhead(result)
    elif name == "cold":
        variants = [r["variant"] for r in result["rows"]]
        assert variants == ["untraced", "empty_trace", "traced", "traced_warm"] * 4
        traced = [r for r in result["rows"] if r["variant"] == "traced"]
        assert all(r["phases_ms"]["tls"] > 0 for r in traced)
        assert all(r["target"] == 1.05 for r in traced)
        assert all(r["cpu_ms"] > 0 for r in result["rows"])
        untraced = [r for r in result["rows"] if r["variant"] == "untraced"]
        assert all(r["cpu_ratio"] == 1.0 for r in untraced)
        summary = report.render_summary({"cold": result})
        assert "first request of a new client (DNS + TCP + TLS), recorded / not" in (
            summary
        )
        assert " µs, of which the empty trace " in summary
        assert "| client CPU ms (ratio; added) |" in report.render_cold(result)
    elif name == "startup":
        assert [r["what"] for r in result["imports"]] == ["plugin", "plugin+configure"]
        assert result["collect"]["tests"] == 200
        assert result["fixture"]["with_ms"] > 0
    elif name == "servers":
        assert [r["server"] for r in result["rows"]] == [
            "httptrace",
            "httptrace-plain",
            "pytest-httpserver",
            "trustme+uvicorn",
            "trustme+hypercorn",
        ]
        assert all(r["requests_per_s"]["median"] > 0 for r in result["rows"])
        assert all(r["load_errors"] == 0 for r in result["rows"])
    elif name == "aiohttp_overhead":
        variants = [r["variant"] for r in result["rows"]]
        assert variants == ["plain", "plain_b", "noop_traceconfig", "recording"]
        assert result["events_per_request"] >= 10
    elif name == "requests_overhead":
        assert [r["variant"] for r in result["rows"]] == [
            "none",
            "none_b",
            "recording",
            "otel",
        ]
        recording, otel = result["rows"][2], result["rows"][3]
        assert recording["events_per_request"] >= 10
        assert otel["spans_per_request"] >= 1
        assert [r["variant"] for r in result["decompose"]] == [
            "shipped",
            "installed",
            "empty trace",
            "recorder",
        ]
    elif name == "instructions":
        if result.get("not_applicable"):  # valgrind missing: said, and nothing else
            assert result["rows"] == []
            assert "Not applicable here: valgrind" in report.render_instructions(result)
            return
        assert [(r["config"], r["layer"]) for r in result["rows"]] == [
            ("sync-h1", "shipped"),
            ("sync-h1", "recording"),
            ("-", "start_stop"),
        ]
        shipped, recording, start_stop = result["rows"]
        # Counted, not timed: the recorder's work shows however loaded CI is.
        assert recording["instructions"] > shipped["instructions"] > 100_000
        assert recording["added"] == recording["instructions"] - shipped["instructions"]
        assert recording["target"] == 1.05 and start_stop["instructions"] > 0
        summary = report.render_summary({"instructions": result})
        assert "every hook recording / as shipped, in client instructions" in summary
    elif name == "scale":
        assert result["retention"]["tests"] > 0
        assert all(r["bytes_per_request"] > 0 for r in result["memory_synthetic"])
        assert result["memory_real"]["connections"]["clients"] > 0
        assert {r["case"] for r in result["assertions"]} >= {
            "sequence: wildcard",
            "sequence: failing",
            "sequence: never ran",
            "find_leaks",
            "assert_no_leaks",
        }
        assert result["memory_target_bytes"] == 5000
        messages = [r for r in result["assertions"] if "message_chars" in r]
        assert {r["case"] for r in messages} == {
            "sequence: failing",
            "sequence: never ran",
        }
        assert all(0 < r["message_chars"] <= 20_000 for r in messages)
        summary = report.render_summary({"scale": result})
        assert "memory per recorded request (keep-alive TLS GETs" in summary
        assert "| ≤ 5,000 B |" in summary
        assert "failure message of `assert_hook_sequence` over " in summary
        assert "| ≤ 20 kB | largest " in summary
        assert "Failure messages: sequence: failing, " in report.render_scale(result)


@pytest.mark.parametrize("name", NAMES)
def test_benchmark_runs_in_quick_mode(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=QUICK_DUMP_AFTER + 20,  # a hung run dumps its stacks and exits first
    )
    assert proc.returncode == 0, proc.stderr[-8000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == name
    assert result["quick"] is True
    numbers = _numbers({k: v for k, v in result.items() if k != "meta"})
    assert numbers and all(math.isfinite(n) for n in numbers)
    _expected_rows(name, result)
    table = report.RENDERERS[name](result)
    assert "QUICK MODE" in table
    assert table.count("\n|") >= 3  # a header, its rule, and at least one row


def test_overhead_on_httpx2_runs_in_quick_mode(tmp_path: Path) -> None:
    """``python -m benchmarks overhead-httpx2``: the overhead benchmark with
    BENCH_LIB=httpx2, anchors included, its table and summary rows rendered (two of
    the four configs: one sync, one async, to stay quick)."""
    pytest.importorskip("httpx2")
    results = tmp_path / "results"
    doc = tmp_path / "performance.md"
    doc.write_text(
        "# Performance\n\n<!-- bench:overhead-httpx2 -->\n"
        "<!-- /bench:overhead-httpx2 -->\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "overhead-httpx2",
            "--results",
            str(results),
            "--docs",
            str(doc),
        ],
        cwd=ROOT,
        env=child_env(BENCH_CONFIGS="sync-h1,async-h2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((results / "overhead-httpx2.json").read_text())
    assert result["lib"] == "httpx2"
    assert result["configs"] == ["sync-h1", "async-h2"]
    _expected_overhead(result)
    text = doc.read_text()
    assert (
        "Command: `BENCH_LIB=httpx2 .venv/bin/python -m benchmarks.overhead` (or "
        "`.venv/bin/python -m benchmarks overhead-httpx2`) (QUICK MODE" in text
    )
    assert "keep-alive TLS GET (httpx2), one hook set" in text


def _ratio(value: float, low: float, high: float, cpu: float = 1.0) -> dict[str, Any]:
    return {
        "ratio": value,
        "round_ratio": {"ci_low": low, "ci_high": high},
        "cpu_ratio": cpu,
    }


def test_overhead_summary_verdicts_and_anchors() -> None:
    """The summary's verdicts from made-up figures: met, not resolved (above the
    target, the interval includes it), not met; the recording's CPU ratio and the
    anchors beside it, a not-applicable anchor with its reason."""
    rows = [
        {"variant": "none_b", "aa_ratio": 1.004, **_ratio(1.0, 0.99, 1.01)},
        {"variant": "imported", "target": 1.01, **_ratio(1.0, 0.99, 1.01)},
        {"variant": "idle", "target": 1.01, **_ratio(1.0, 0.99, 1.01)},
        {"variant": "installed", "target": 1.01, **_ratio(1.005, 0.98, 1.02)},
        {"variant": "one", "target": 1.02, **_ratio(1.03, 1.01, 1.05)},
        {"variant": "recording", "target": 1.05, **_ratio(1.2, 1.1, 1.3, cpu=1.4)},
        {"variant": "httpcore_noop", "target": None, **_ratio(1.01, 1, 1.02, 1.02)},
        {"variant": "otel", "target": None, "not_applicable": "no instrumentor"},
    ]
    result = {
        "lib": "httpx",
        "configs": ["sync-h1"],
        "variants": [r["variant"] for r in rows],
        "rows": [{"config": "sync-h1", **r} for r in rows],
    }
    lines = report.render_summary({"overhead": result}).splitlines()[2:]
    verdicts = {line.split(" | ")[0]: line.split(" | ")[-1] for line in lines}
    prefix = "| keep-alive TLS GET (httpx), "
    assert (
        verdicts[
            prefix + "instrumentation installed, this request untraced / no plugin"
        ]
        == "**met** |"
    )
    assert verdicts[
        prefix + "one hook set (`got_conn`), in effect here / no plugin"
    ].startswith("**not resolved**")
    assert verdicts[prefix + "every hook recording / no plugin"] == "**not met** |"
    (recording,) = [line for line in lines if "every hook recording" in line]
    assert (
        "sync-h1: 1.200 [1.100–1.300], CPU 1.400; beside it OpenTelemetry not "
        "applicable (no instrumentor), httpcore no-op trace 1.010 (CPU 1.020) "
        "(A/A control, B / A: 1.004–1.004)"
    ) in recording
    na = report._overhead_row({"config": "sync-h1", **rows[-1]})
    assert na[2] == "not applicable: no instrumentor"
    assert "OpenTelemetry httpx instrumentation" in na[1]


def test_compare_with_a_commit_runs_in_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.compare",
            "HEAD",
            "--quick",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=QUICK_DUMP_AFTER + 20,  # a hung run dumps its stacks and exits first
    )
    assert proc.returncode == 0, proc.stderr[-8000:]
    result = json.loads(out.read_text())
    assert len(result["rev_commit"]) == 40
    variants = {r["variant"] for r in result["rows"]}
    assert {"recording@REV", "recording@HEAD", "HEAD / REV, recording"} <= variants


def test_summary_names_every_target(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "startup",
            "--results",
            str(results),
            "--docs",
            str(tmp_path / "performance.md"),
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results / "startup.json").exists()
    doc = (tmp_path / "performance.md").read_text()
    assert "<!-- bench:startup -->" in doc
    summary = doc.split("<!-- bench:summary -->")[1]
    assert "import of the plugin after pytest" in summary
    assert "`pytest --collect-only`, 200 tests" in summary


def test_update_doc_replaces_only_the_tables(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(
        "# Performance\n\nProse before.\n\n<!-- bench:cold -->\nold table\n"
        "<!-- /bench:cold -->\n\nProse after.\n"
    )
    report.update_doc(doc, {"cold": "| new |", "scale": "| added |"})
    text = doc.read_text()
    assert "old table" not in text
    assert "Prose before.\n\n<!-- bench:cold -->\n| new |\n<!-- /bench:cold -->" in text
    assert "Prose after." in text
    assert text.endswith(
        "## scale\n\n<!-- bench:scale -->\n| added |\n<!-- /bench:scale -->\n"
    )


def test_parse_importtime_sums_what_comes_after_pytest() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 | _io",
            "import time:       500 |      90000 | pytest",
            "import time:       200 |        200 |   pytest_httptrace._version",
            "import time:       600 |        800 | pytest_httptrace",
            "import time:      1000 |       1800 | pytest_httptrace.plugin",
        ]
    )
    total, own = parse_importtime(stderr)
    assert total == pytest.approx(2.6)
    assert own == {
        "pytest_httptrace._version": 0.2,
        "pytest_httptrace": 0.6,
        "pytest_httptrace.plugin": 1.0,
    }
    with pytest.raises(RuntimeError, match="no 'pytest' entry"):
        parse_importtime("import time:       100 |        100 | _io")


def test_unknown_benchmark_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "nope"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown benchmark 'nope'" in proc.stderr
