"""``pytest --httptrace-har=PATH`` (ini ``httptrace_har``): one HAR file per run.

Registered by ``plugin.py`` when the option is given. Each test's requests become
HAR entries (`har.har_entry`, on the process that recorded them: its wall-clock
offset converts their times) on a page named after the test; ``PATH`` is written at
the end of the session. Under pytest-xdist the controller writes the one file: each
worker sends its entries with its ``workeroutput``, as `_reporting.ReportPlugin`
sends its requests. A test's own file (the marker's ``har=``) is written by
`_recording.RecordingPlugin` at its teardown (`write_test_har`).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._recording import recorder_key

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["HarPlugin", "check_har_path", "write_test_har"]

_WORKER_KEY = "httptrace_har"


def check_har_path(raw: str, base: Path, what: str) -> Path:
    """``raw`` resolved against ``base``; a usage error if it cannot be written."""
    path = Path(base, os.path.expanduser(raw))
    if path.is_dir():
        raise pytest.UsageError(
            f"{what}={raw}: {path} is a directory; give a file name, e.g. "
            f"{what}={Path(raw, 'httptrace.har')}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(
            f"{what}={raw}: cannot create the directory {path.parent}: {exc}"
        ) from None
    if not os.access(path.parent, os.W_OK) or (
        path.exists() and not os.access(path, os.W_OK)
    ):
        raise pytest.UsageError(f"{what}={raw}: {path} is not writable")
    from .har import wall_offset

    wall_offset()  # taken now, before any test records: one offset for the run
    return path


def write_test_har(item: pytest.Item, path: Path, recorder: Recorder) -> None:
    """Write one test's HAR file (the marker's ``har=``)."""
    from .har import har_document, write_har

    written = write_har(path, har_document([(item.nodeid, recorder.all_requests)]))
    item.user_properties.append(("httptrace_har_file", str(written)))


class HarPlugin:
    """Collects each test's HAR entries and writes the run's HAR file at the end."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.path = path
        #: (node id, HAR entries) per test, in the order the tests ended.
        self.tests: list[tuple[str, list[dict[str, Any]]]] = []
        self.written: Path | None = None
        self.error: str | None = None
        self.is_worker = hasattr(config, "workerinput")

    @classmethod
    def from_config(cls, config: pytest.Config, raw: str) -> HarPlugin:
        """Check the path before the run (a usage error if it cannot be written)."""
        path = check_har_path(raw, config.invocation_params.dir, "--httptrace-har")
        return cls(config, path)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            recorder = item.stash.get(recorder_key, None)
            if recorder is not None and recorder.all_requests:
                from .har import har_entry

                requests = recorder.all_requests
                entries = [har_entry(r, test=item.nodeid) for r in requests]
                self.tests.append((item.nodeid, entries))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist, on the controller: a worker finished; take its entries."""
        output = getattr(node, "workeroutput", None) or {}
        for name, entries in output.get(_WORKER_KEY, ()):
            self.tests.append((str(name), list(entries)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
            workeroutput[_WORKER_KEY] = self.tests
            return
        from .har import har_log, write_har

        try:
            self.written = write_har(self.path, har_log(self.tests))
        except OSError as exc:
            self.error = f"could not write {self.path}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        if self.error is not None:
            terminalreporter.write_line(f"httptrace HAR: {self.error}", red=True)
        elif self.written is not None:
            terminalreporter.write_line(
                f"httptrace HAR: {self.written} (open it in a browser's devtools, "
                "mitmproxy or any HAR viewer)"
            )
