"""``pytest --httptrace-report=PATH``: every test's lifecycles in one report.

`ReportPlugin` is registered by ``plugin.py`` when the option is given. The recording
itself is `RecordingPlugin`'s (with the option, every test records, not only those that
asked for ``httptrace_recorder``); this plugin takes each test's requests after its
teardown, in plain form (`waterfall.RequestData`), and writes ``PATH.json`` (Chrome
trace events) and ``PATH.html`` at the end of the session (see `report`).

Under pytest-xdist the controller writes the one report: each worker sends its tests'
requests with its ``workeroutput`` when it finishes, and nothing is written by workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from ._recording import recorder_key
from .report import report_paths, write_report
from .waterfall import RequestData, request_bounds, request_data

__all__ = ["ReportPlugin"]

_WORKER_KEY = "httptrace_report"


class ReportPlugin:
    """Collects each test's recorded requests and writes the report at the end."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.tests: list[tuple[str, list[RequestData], str | None]] = []
        #: Each running test's outcome so far, by node id (see `_outcome`).
        self._outcomes: dict[str, str] = {}
        self.written: tuple[Path, Path] | None = None
        self.error: str | None = None
        self.is_worker = hasattr(config, "workerinput")

    @classmethod
    def from_config(cls, config: pytest.Config, raw: str) -> ReportPlugin:
        """Check the option before the run; create the report's directory."""
        path = Path(config.invocation_params.dir, os.path.expanduser(raw))
        json_path, html_path = report_paths(path)
        for target in (json_path, html_path):
            if target.is_dir():
                raise pytest.UsageError(
                    f"--httptrace-report={raw}: {target} is a directory; give a file "
                    f"name, e.g. --httptrace-report={Path(raw, 'httptrace')}"
                )
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(
                f"--httptrace-report={raw}: cannot create the directory "
                f"{json_path.parent}: {exc}"
            ) from None
        if not os.access(json_path.parent, os.W_OK):
            raise pytest.UsageError(
                f"--httptrace-report={raw}: the directory {json_path.parent} is not "
                "writable"
            )
        return cls(config, path)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            recorder = item.stash.get(recorder_key, None)
            requests = [] if recorder is None else recorder.all_requests
            outcome = self._outcomes.pop(item.nodeid, None)
            data = [request_data(r) for r in requests]
            self.tests.append((item.nodeid, data, outcome))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._outcomes[report.nodeid] = _outcome(
            self._outcomes.get(report.nodeid), report
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist, on the controller: a worker finished; take its tests."""
        output = getattr(node, "workeroutput", None) or {}
        for name, requests, *outcome in output.get(_WORKER_KEY, ()):
            word = outcome[0] if outcome else None
            self.tests.append((str(name), list(requests), word))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
            workeroutput[_WORKER_KEY] = self.tests
            return
        self.tests.sort(key=_first_start)
        try:
            self.written = write_report(self.path, self.tests)
        except OSError as exc:
            self.error = f"could not write {self.path}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        if self.error is not None:
            terminalreporter.write_line(f"httptrace report: {self.error}", red=True)
        elif self.written is not None:
            json_path, html_path = self.written
            terminalreporter.write_line(
                f"httptrace report: {html_path} (open in a browser) and {json_path} "
                "(Chrome trace events: https://ui.perfetto.dev or chrome://tracing)"
            )


def _outcome(so_far: str | None, report: pytest.TestReport) -> str:
    """A test's outcome as pytest's summary words it, from its phase reports:
    ``error`` (setup or teardown failed), ``failed``, ``skipped``, ``xfailed``,
    ``xpassed`` or ``passed``. A failure is never overwritten by a later phase."""
    if so_far in ("error", "failed"):
        return so_far
    xfail = hasattr(report, "wasxfail")
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    if report.when == "call":
        return "xpassed" if xfail else "passed"
    return so_far or "passed"


def _first_start(test: tuple[str, list[RequestData], str | None]) -> float:
    """Sort key: when the test's first request started (tests without any last)."""
    starts = [request_bounds(r)[0] for r in test[1]]
    return min(starts) if starts else math.inf
