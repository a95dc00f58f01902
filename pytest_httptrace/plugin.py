"""The pytest plugin (``-p httptrace``): options, markers and fixtures that delegate.

Everything heavy is imported inside the fixtures, so loading the plugin is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

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
    group.addoption(
        "--httptrace-report",
        dest="httptrace_report",
        default=None,
        metavar="PATH",
        help="record every test's HTTP requests and write PATH.json (Chrome trace "
        "events, for Perfetto) and PATH.html (waterfalls) at the end of the run.",
    )
    group.addoption(
        "--httptrace-har",
        dest="httptrace_har",
        default=None,
        metavar="PATH",
        help="record every test's HTTP requests and write them to PATH as one HAR "
        "1.2 file (a page per test) at the end of the run (default: the "
        "httptrace_har ini value; none).",
    )
    parser.addini(
        "httptrace_har",
        "HAR 1.2 file of every test's HTTP requests, written at the end of the run "
        "(default: none)",
        default="",
    )
    parser.addini(
        "httptrace_leaks",
        "off / warn / error: leak check of recorded tests (default warn)",
        default="warn",
    )
    group.addoption(
        "--httptrace-trace-dir",
        dest="httptrace_trace_dir",
        default=None,
        metavar="DIR",
        help="write each recorded test's lifecycles to DIR/<test id>.json (Chrome "
        "trace) and .html (default: the httptrace_trace_dir ini value; none).",
    )
    parser.addini(
        "httptrace_trace_dir",
        "directory for per-test trace files of recorded tests (default: none)",
        default="",
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
        "seconds, trace_file='path', har='path'): record the test's HTTP requests "
        "(as the httptrace_recorder fixture does) with these settings.",
    )
    from ._recording import RecordingPlugin

    config.pluginmanager.register(RecordingPlugin(config), "httptrace-recording")
    report = config.getoption("httptrace_report")
    if report:
        from ._reporting import ReportPlugin

        plugin = ReportPlugin.from_config(config, report)
        config.pluginmanager.register(plugin, "httptrace-report")
    har = config.getoption("httptrace_har") or config.getini("httptrace_har")
    if har:
        from ._har_output import HarPlugin

        config.pluginmanager.register(
            HarPlugin.from_config(config, har), "httptrace-har"
        )


# -- recorder --


@pytest.fixture
def httptrace_recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Record every hook call of every HTTP request made during the test.

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


# -- servers --
# Local servers on loopback, started once per session (per xdist worker) by the
# session fixtures (public for the hypercorn servers, so shared clients can build on
# them); the per-test fixtures reset them after each test and report there what went
# wrong on the server side during it. See docs/servers.md.

if TYPE_CHECKING:
    import trustme

    from .raw_server import RawServer
    from .server import TestServer


@pytest.fixture(scope="session")
def httptrace_ca() -> trustme.CA:
    """The session's trustme CA; it signs the certificate of every local server."""
    from ._certs import new_ca

    return new_ca()


@pytest.fixture(scope="session")
def httptrace_session_server(httptrace_ca: trustme.CA) -> Iterator[TestServer]:
    """The local TLS test server, session-scoped: for clients shared by many tests.

    The same server object as `httptrace_server`, without the per-test reset: a
    module- or session-scoped client fixture builds on this one (one over
    ``httptrace_server`` is a ``ScopeMismatch``). Tests that also ask for
    ``httptrace_server`` get the per-test reset and checks. Example::

        @pytest.fixture(scope="module")
        def api(httptrace_session_server):
            with httptrace_session_server.client() as client:
                yield client

        def test_first(api, httptrace_server, httptrace_recorder):
            api.get("/")
    """
    from .server import start_server

    with start_server(ca=httptrace_ca) as server:
        yield server


@pytest.fixture(scope="session")
def httptrace_session_http_server(httptrace_ca: trustme.CA) -> Iterator[TestServer]:
    """`httptrace_session_server` without TLS: the server of `httptrace_http_server`."""
    from .server import start_server

    with start_server(tls=False, ca=httptrace_ca) as server:
        yield server


@pytest.fixture(scope="session")
def _httptrace_raw_server_session(httptrace_ca: trustme.CA) -> Iterator[RawServer]:
    from .raw_server import start_raw_server

    with start_raw_server(ca=httptrace_ca) as server:
        yield server


@pytest.fixture(scope="session")
def _httptrace_raw_http_server_session(
    httptrace_ca: trustme.CA,
) -> Iterator[RawServer]:
    from .raw_server import start_raw_server

    with start_raw_server(tls=False, ca=httptrace_ca) as server:
        yield server


_Server = TypeVar("_Server", "TestServer", "RawServer")


def _per_test(server: _Server) -> Iterator[_Server]:
    yield server
    try:
        server.check()  # a route handler raised, or a script went wrong: fail here
    finally:
        server.reset()


@pytest.fixture
def httptrace_server(httptrace_session_server: TestServer) -> Iterator[TestServer]:
    """The local TLS test server (hypercorn; HTTP/1.1 and HTTP/2 by ALPN).

    Custom routes and the log are reset after each test; a route handler that raised
    fails the test at teardown. Example::

        def test_keep_alive(httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url("/"))
                client.get(httptrace_server.url("/"))
            [conn] = httptrace_server.log.connections
            assert len(conn.requests) == 2
    """
    yield from _per_test(httptrace_session_server)


@pytest.fixture
def httptrace_http_server(
    httptrace_session_http_server: TestServer,
) -> Iterator[TestServer]:
    """`httptrace_server` without TLS (``http://``; HTTP/2 by prior knowledge only)."""
    yield from _per_test(httptrace_session_http_server)


@pytest.fixture
def httptrace_raw_server(
    _httptrace_raw_server_session: RawServer,
) -> Iterator[RawServer]:
    """A scripted HTTP/1.1 server over TLS, for what hypercorn will not do.

    Scripts and records are dropped after each test; a read step that failed or an
    unscripted connection fails the test at teardown. Example::

        from pytest_httptrace.raw_server import Drain, ReadHead, Send

        def test_417_without_100(httptrace_raw_server):
            raw = httptrace_raw_server
            raw.script([ReadHead(), Send.response(417), Drain(0.1)])
            with raw.client() as client:
                response = client.post(raw.url("/"), content=b"x" * 10,
                                       headers={"Expect": "100-continue"})
            assert response.status_code == 417
            [conn] = raw.wait()
            assert conn.received.endswith(b"x" * 10)  # httpx sent the body anyway
    """
    yield from _per_test(_httptrace_raw_server_session)


@pytest.fixture
def httptrace_raw_http_server(
    _httptrace_raw_http_server_session: RawServer,
) -> Iterator[RawServer]:
    """`httptrace_raw_server` without TLS (``http://``)."""
    yield from _per_test(_httptrace_raw_http_server_session)


def pytest_report_header(config: pytest.Config) -> str:
    from ._version import __version__
    from .sources import library_report

    libraries = ", ".join(library_report()) or "no client library installed"
    return f"httptrace: {__version__}, {libraries}"
