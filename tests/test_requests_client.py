"""requests as people use it (module functions, sessions made before the trace),
the test servers' clients, leaks at the user's line, version checks, and urllib3 /
http.client exactly as shipped after tracing."""

from __future__ import annotations

import http.client
import os
from typing import Any

import pytest
import requests
import urllib3
import urllib3.util.connection
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool

from pytest_httptrace import ClientTrace, Recorder, sources, with_client_trace
from pytest_httptrace.urllib3_trace import _patches, _requests, _source


def test_module_level_get_is_traced(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    response = requests.get(
        httptrace_server.url("/"), verify=httptrace_server.ca_bundle()
    )
    assert response.text == "hello"
    (request,) = httptrace_recorder.requests
    assert request.status == 200 and "put_idle_conn" in request.hooks
    assert request.origin is not None
    assert request.origin.startswith(__file__)


def test_session_and_connection_from_before_the_trace(httptrace_server: Any) -> None:
    seen: list[Any] = []
    with httptrace_server.requests_session() as session:
        session.get(httptrace_server.url("/"))  # dialed untraced
        with with_client_trace(ClientTrace(got_conn=seen.append)):
            session.get(httptrace_server.url("/"))
    (info,) = seen
    assert info.reused and info.was_idle  # Go: a connection already open is reused


def test_ca_bundle_is_one_file_per_ca(httptrace_server: Any) -> None:
    path = httptrace_server.ca_bundle()
    assert path == httptrace_server.ca_bundle()
    with open(path, "rb") as f:
        assert f.read() == httptrace_server.ca.cert_pem.bytes()
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"


def test_clients_of_every_server(
    httptrace_http_server: Any, httptrace_raw_server: Any
) -> None:
    from pytest_httptrace.raw_server import ReadHead, Send

    with httptrace_http_server.requests_session() as session:
        assert session.get(httptrace_http_server.url("/")).text == "hello"
    httptrace_raw_server.script([ReadHead(), Send.response(200, "raw")])
    manager = httptrace_raw_server.urllib3_pool_manager(retries=False)
    assert manager.request("GET", httptrace_raw_server.url("/")).data == b"raw"
    manager.clear()
    with pytest.raises(TypeError, match="no attribute 'verfy'"):
        httptrace_http_server.requests_session(verfy=False)


def test_session_ignores_the_environment(
    httptrace_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with httptrace_server.requests_session() as session:
        assert session.get(httptrace_server.url("/")).text == "hello"


LEAKY = """
    def test_leaky_requests(httptrace_recorder, httptrace_server):
        session = httptrace_server.requests_session()
        response = session.get(httptrace_server.url("/stream/2"), stream=True)
        assert response.status_code == 200

    def test_leaky_urllib3(httptrace_recorder, httptrace_server):
        manager = httptrace_server.urllib3_pool_manager()
        response = manager.request(
            "GET", httptrace_server.url("/stream/2"), preload_content=False
        )
        assert response.status == 200
"""


def test_unclosed_streams_are_leaks_at_the_users_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest(
        "-p", "httptrace", "-W", "default::pytest_httptrace.HTTPTraceLeakWarning"
    )
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*test_unclosed_streams_are_leaks_at_the_users_line.py:3: "
            "HTTPTraceLeakWarning: 1 response was never closed*",
            "*test_unclosed_streams_are_leaks_at_the_users_line.py:8: "
            "HTTPTraceLeakWarning: 1 response was never closed*",
        ]
    )


def test_unsupported_urllib3_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_source, "_installed", lambda dist: "1.26.20")
    with pytest.raises(sources.UnsupportedVersionError) as info:
        _source.check_version.__wrapped__()  # type: ignore[attr-defined]
    assert str(info.value).startswith(
        "pytest-httptrace traces urllib3 2.x (tested on 2.0, 2.2 and 2.8), found "
        "urllib3 1.26.20."
    )


def test_unsupported_requests_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_requests, "version", lambda dist: "2.31.0")
    with pytest.raises(
        sources.UnsupportedVersionError, match=r"found requests 2\.31\.0"
    ):
        _requests.check_version()


def test_report_names_both_libraries() -> None:
    report = sources.library_report()
    assert f"urllib3 {urllib3.__version__}" in report
    assert any(line.startswith(f"requests {requests.__version__}") for line in report)


SHIPPED = {
    (HTTPConnectionPool, "urlopen"): HTTPConnectionPool.urlopen,
    (HTTPConnectionPool, "_put_conn"): HTTPConnectionPool._put_conn,
    (HTTPSConnection, "connect"): HTTPSConnection.connect,
    (http.client.HTTPResponse, "_read_status"): http.client.HTTPResponse._read_status,
    (requests.Session, "send"): requests.Session.send,
}


def test_exactly_as_shipped_after_tracing(httptrace_server: Any) -> None:
    create_connection = urllib3.util.connection.create_connection
    with with_client_trace(ClientTrace()):
        assert (
            HTTPConnectionPool.urlopen is not SHIPPED[(HTTPConnectionPool, "urlopen")]
        )
        assert "endheaders" in HTTPConnection.__dict__
        assert urllib3.util.connection.create_connection is not create_connection
    for (cls, name), fn in SHIPPED.items():
        assert cls.__dict__[name] is fn
    assert "endheaders" not in HTTPConnection.__dict__  # inherited, as shipped
    assert urllib3.util.connection.create_connection is create_connection
    assert not _patches.installed()


def test_unsupported_urllib3_fails_at_start_and_installs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_source, "_installed", lambda dist: "1.26.20")
    _source.check_version.cache_clear()  # type: ignore[attr-defined]
    try:
        with (
            pytest.raises(sources.UnsupportedVersionError, match=r"urllib3 1\.26\.20"),
            with_client_trace(ClientTrace()),
        ):
            pass  # pragma: no cover - the start raises
        assert not _patches.installed()
        assert (
            HTTPConnectionPool.__dict__["urlopen"]
            is SHIPPED[(HTTPConnectionPool, "urlopen")]
        )
    finally:
        monkeypatch.undo()
        _source.check_version.cache_clear()  # type: ignore[attr-defined]
