"""Per-test recording for pytest: phases, leak checks, report sections.

Like ``caplog``'s LoggingPlugin: one object registered in ``pytest_configure`` wraps
setup, call and teardown of every test that asks for a recorder (the
``httptrace_recorder`` fixture or the ``httptrace`` marker), keeps its `Recorder` on
the item's stash, and adds a "Captured httptrace <phase>" section to a failing test's
report.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import re
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:  # imported when a test records: loading the plugin stays cheap
    from .recorder import Recorder, RequestRecord

LeakMode = Literal["off", "warn", "error"]
LEAK_MODES: tuple[LeakMode, ...] = ("off", "warn", "error")

recorder_key = pytest.StashKey["Recorder"]()


class HTTPTraceLeakWarning(UserWarning):
    """A request got a connection that was never returned to the pool or closed."""


class TestSettings:
    """The settings in force for one test: marker, then CLI, then ini."""

    __test__ = False

    def __init__(self, item: pytest.Item) -> None:
        config = item.config
        marker = item.get_closest_marker("httptrace")
        kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
        unknown = set(kwargs) - MARKER_KEYWORDS
        if marker is not None and (marker.args or unknown):
            raise pytest.UsageError(
                "@pytest.mark.httptrace takes the keyword arguments "
                f"{', '.join(sorted(MARKER_KEYWORDS))} only; got "
                f"args={marker.args!r}, unknown keywords {sorted(unknown)!r}"
            )
        leaks = (
            kwargs.get("leaks")
            or config.getoption("httptrace_leaks")
            or (config.getini("httptrace_leaks"))
        )
        if leaks not in LEAK_MODES:
            raise pytest.UsageError(
                f"httptrace leaks must be one of {', '.join(LEAK_MODES)}, not {leaks!r}"
            )
        self.leaks: LeakMode = leaks
        self.wait_for_100_continue = _wait_setting(
            kwargs.get(
                "wait_for_100_continue",
                config.getini("httptrace_wait_for_100_continue") or None,
            )
        )
        #: Where to write this test's trace (PATH.json + PATH.html), or None.
        self.trace_file = _trace_file(item, kwargs.get("trace_file"))
        #: Where to write this test's own HAR file (the marker's ``har=``), or None.
        self.har_file = _har_file(item, kwargs.get("har"))
        #: The test asked for recording (fixture or marker): leak checks apply.
        self.requested = marker is not None or "httptrace_recorder" in getattr(
            item, "fixturenames", ()
        )
        #: The test records: asked for, or every test under --httptrace-report
        #: (which only observes: no leak check for tests that did not ask).
        self.enabled = (
            self.requested
            or bool(config.getoption("httptrace_report", None))
            or bool(config.getoption("httptrace_har", None))
            or bool(config.getini("httptrace_har"))
        )


MARKER_KEYWORDS = {"leaks", "wait_for_100_continue", "trace_file", "har"}


def _har_file(item: pytest.Item, marker_value: object) -> Path | None:
    """The marker's ``har`` path (relative to the rootdir), checked now."""
    if marker_value is None:
        return None
    if not isinstance(marker_value, (str, os.PathLike)) or not os.fspath(marker_value):
        raise pytest.UsageError(
            f"@pytest.mark.httptrace(har=...) takes a path, got {marker_value!r}"
        )
    from ._har_output import check_har_path

    return check_har_path(
        str(os.fspath(marker_value)),
        item.config.rootpath,
        "@pytest.mark.httptrace(har=...)",
    )


def _trace_file(item: pytest.Item, marker_value: object) -> Path | None:
    """The marker's ``trace_file``, else a file named after the test in the trace
    directory (``--httptrace-trace-dir`` / ini ``httptrace_trace_dir``), else None."""
    config = item.config
    if marker_value is not None:
        if not isinstance(marker_value, (str, os.PathLike)):
            raise pytest.UsageError(
                f"@pytest.mark.httptrace(trace_file=...) takes a path, got "
                f"{marker_value!r}"
            )
        return Path(config.rootpath, os.fspath(marker_value))
    directory = config.getoption("httptrace_trace_dir", None) or config.getini(
        "httptrace_trace_dir"
    )
    if not directory:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")
    return Path(config.rootpath, directory, name)


def _wait_setting(value: object) -> float | None:
    """Seconds to wait for 100 Continue, from a marker or ini value (None: off)."""
    if value is None or value is False or value in ("", "false", "off", "0"):
        return None
    if value is True or value in ("true", "on"):
        return 1.0
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds <= 0:
        raise pytest.UsageError(
            "httptrace wait_for_100_continue must be true/false or a positive "
            f"number of seconds, not {value!r}"
        )
    return seconds


settings_key = pytest.StashKey[TestSettings]()
#: Why the setup could not start the test's recorder (an unsupported library).
unsupported_key = pytest.StashKey[str]()
waiting_key = pytest.StashKey[bool]()
#: The test leaked a response, and it was reported.
leaked_key = pytest.StashKey[bool]()


def settings_of(item: pytest.Item) -> TestSettings:
    """The item's settings (computed at collection; computed now for late items)."""
    settings = item.stash.get(settings_key, None)
    if settings is None:
        settings = item.stash[settings_key] = TestSettings(item)
    return settings


class RecordingPlugin:
    """Starts a recorder for each test that wants one; see the module docstring."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Bad marker arguments are a usage error of the whole run, found up front.
        for item in items:
            item.stash[settings_key] = TestSettings(item)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            # Outermost wrapper: the report plugin has taken what it needs. Items
            # live until the session ends; their recordings need not (caplog, too,
            # drops its handler's records after the test).
            if recorder_key in item.stash:
                del item.stash[recorder_key]
            if item.stash.get(leaked_key, False):
                _collect_leaked()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        from .sources import UnsupportedVersionError

        settings = settings_of(item)
        unsupported: UnsupportedVersionError | None = None
        try:
            if settings.wait_for_100_continue is not None:
                # On from setup to the end of teardown (released in teardown below).
                from . import httpx_trace
                from .trace import _acquire_sources

                _acquire_sources()
                httpx_trace.set_wait_default(settings.wait_for_100_continue)
                item.stash[waiting_key] = True
            if settings.enabled:
                from .recorder import Recorder

                recorder = Recorder.start()
                recorder.phase = "setup"
                item.stash[recorder_key] = recorder
                from ._reuse import _remember

                _remember(recorder)  # reuse_verdict finds a request's siblings here
        except UnsupportedVersionError as exc:
            unsupported = exc
        if unsupported is None:
            return (yield)
        # The other plugins' setup still runs (their teardown expects it), and the
        # test errors with our one message, not a traceback of our own: from the
        # recorder fixture if the test asked for it, else from here.
        item.stash[unsupported_key] = str(unsupported)
        yield
        pytest.fail(str(unsupported), pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        recorder = item.stash.get(recorder_key, None)
        if recorder is not None:
            recorder.phase = "call"
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        recorder = item.stash.get(recorder_key, None)
        if recorder is not None:
            recorder.phase = "teardown"
        try:
            return (yield)
        finally:
            if item.stash.get(waiting_key, False):
                from . import httpx_trace
                from .trace import _release_sources

                httpx_trace.set_wait_default(None)
                _release_sources()
                item.stash[waiting_key] = False
            if recorder is not None:
                recorder.stop()
                self._write_trace_file(item, recorder)
                har_file = settings_of(item).har_file
                if har_file is not None:
                    from ._har_output import write_test_har

                    write_test_har(item, har_file, recorder)
                self._check_leaks(item, recorder)

    def _write_trace_file(self, item: pytest.Item, recorder: Recorder) -> None:
        path = settings_of(item).trace_file
        if path is None or not settings_of(item).requested:
            return
        from .report import write_report

        json_path, _ = write_report(path, [(item.nodeid, recorder.all_requests)])
        item.user_properties.append(("httptrace_trace_file", str(json_path)))

    def _check_leaks(self, item: pytest.Item, recorder: Recorder) -> None:
        settings = settings_of(item)
        mode = settings.leaks
        if mode == "off" or not settings.requested:
            return
        from .assertions import assert_no_leaks, find_leaks

        leaks = find_leaks(r for r in recorder.all_requests if r.phase != "teardown")
        if not leaks:
            return
        message = "connection leak"
        try:
            assert_no_leaks(leaks)
        except AssertionError as error:
            message = str(error)
        _close_leaked(leaks)
        item.stash[leaked_key] = True
        if mode == "error":
            pytest.fail(message, pytrace=False)
        # Point the warning at the user's line that made the first leaking request.
        filename, _, line = (leaks[0].origin or "").rpartition(":")
        try:
            if filename and line.isdigit():
                warnings.warn_explicit(
                    HTTPTraceLeakWarning(message),
                    HTTPTraceLeakWarning,
                    filename,
                    int(line),
                    registry={},  # report every leak, not once per line
                )
            else:
                warnings.warn(HTTPTraceLeakWarning(message), stacklevel=1)
        except HTTPTraceLeakWarning:
            # `-W error` / `filterwarnings = error` turned the warning into an
            # exception: report it as --httptrace-leaks=error does, not as a
            # traceback through this plugin's teardown.
            pass
        else:
            return
        pytest.fail(message, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        recorder = item.stash.get(recorder_key, None)
        if recorder is not None and report.failed:
            requests = recorder.get_records(call.when)
            title = f"Captured httptrace {call.when}"
            if requests and call.excinfo is not None:
                # A helper's message (or the user's, built with render_timeline)
                # already has a timeline: the section adds only what it left out.
                from .assertions import _requests_not_shown

                shown_before = len(requests)
                requests = _requests_not_shown(str(call.excinfo.value), requests)
                if len(requests) < shown_before:
                    title += " (requests not in the failure message)"
            if requests:
                from .assertions import render_timeline

                report.sections.append((title, render_timeline(requests)))
        return report


def _close_leaked(leaks: list[RequestRecord]) -> None:
    """Close the connections of leaked responses, once the leak is reported.

    The test is over and nothing will read them: left open, their sockets would be
    garbage-collected in some later test, as a ``ResourceWarning`` there (an error
    under ``-W error``). Connections whose ``close()`` is a coroutine function
    (async clients) are left to their client: their event loop is gone.
    """
    for request in leaks:
        conn = None if request.connection is None else request.connection.conn
        close = getattr(conn, "close", None)
        if close is None or inspect.iscoroutinefunction(close):
            continue
        with contextlib.suppress(Exception):
            close()


def _collect_leaked() -> None:
    """Collect the garbage of a test whose leak was just reported, now, quietly.

    What `_close_leaked` could not close (the transport of an async client whose event
    loop has ended) would otherwise be garbage-collected in a later test, with a
    ``ResourceWarning`` (an error under ``-W error``) about a leak already reported.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def recorder_for(request: pytest.FixtureRequest) -> Recorder:
    """The recorder of the test (started at setup by `RecordingPlugin`)."""
    stash: pytest.Stash = request.node.stash
    recorder = stash.get(recorder_key, None)
    unsupported = stash.get(unsupported_key, None)
    if unsupported is not None:  # the setup could not start one: say why, once
        pytest.fail(unsupported, pytrace=False)
    if recorder is None:  # requested dynamically, with getfixturevalue()
        from ._reuse import _remember
        from .recorder import Recorder

        recorder = Recorder.start()
        stash[recorder_key] = recorder
        _remember(recorder)
    return recorder
