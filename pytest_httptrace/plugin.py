"""The pytest plugin (``-p httptrace``): options, markers and fixtures that delegate.

Everything heavy is imported inside the fixtures, so loading the plugin is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .recorder import Recorder


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("httptrace", "httptrace: HTTP request lifecycles")
    group.addoption(
        "--httptrace-leaks",
        dest="httptrace_leaks",
        choices=("off", "warn", "error"),
        default=None,
        help="what to do when a recorded request's connection is never returned "
        "or closed (default: the httptrace_leaks ini value, 'warn').",
    )
    parser.addini(
        "httptrace_leaks",
        "off / warn / error: leak check of recorded tests (default warn)",
        default="warn",
    )
    parser.addini(
        "httptrace_wait_for_100_continue",
        "opt-in: make httpx wait for 100 Continue before sending a body (true, or "
        "a timeout in seconds; default off). Changes the client's behaviour.",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "httptrace(leaks='off'|'warn'|'error', wait_for_100_continue=False|True|"
        "seconds): record the test's httpx requests (as the httptrace_recorder "
        "fixture does) with these settings.",
    )
    from ._recording import RecordingPlugin

    config.pluginmanager.register(RecordingPlugin(config), "httptrace-recording")


# -- recorder --


@pytest.fixture
def httptrace_recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Record every hook call of every httpx request made during the test.

    Records from any thread or task of the process; ``.requests`` shows the current
    phase (setup, call or teardown), like ``caplog.records``.

    Example::

        def test_reuses_connection(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url())
                client.get(httptrace_server.url())
            first, second = httptrace_recorder.requests
            assert_reused(second)
    """
    from ._recording import recorder_for

    yield recorder_for(request)


def pytest_report_header(config: pytest.Config) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from ._version import __version__

    try:
        httpx_version = version("httpx")
    except PackageNotFoundError:  # pragma: no cover - httpx is a dependency
        httpx_version = "not installed"
    return f"httptrace: {__version__}, httpx {httpx_version}"
