"""`RequestRecord.normalized` / `Recorder.normalized`: equal lifecycles compare equal
across runs and xdist workers, and pin with inline-snapshot and syrupy."""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from types import ModuleType
from typing import Any

import pytest

from pytest_httptrace import Recorder

RUNS = 20


def _headers(lib: str) -> list[dict[str, Any]]:
    return [
        {"hook": "wrote_header_field", "key": key, "values": [value]}
        for key, value in (
            ("Host", "localhost:<port>"),
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("Connection", "keep-alive"),
            ("User-Agent", f"python-{lib}/<version>"),
        )
    ]


def _new_connection(conn: int) -> list[dict[str, Any]]:
    return [
        {"hook": "get_conn", "host_port": "localhost:<port>"},
        {"hook": "dns_start", "host": "localhost"},
        {"hook": "dns_done", "err": None},
        {"hook": "connect_start", "network": "tcp", "addr": "<addr>"},
        {"hook": "connect_done", "network": "tcp", "addr": "<addr>", "err": None},
        {"hook": "tls_handshake_start"},
        {"hook": "tls_handshake_done", "negotiated_protocol": "http/1.1", "err": None},
        {"hook": "got_conn", "conn": conn, "reused": False, "was_idle": False},
    ]


@pytest.mark.usefixtures("httpx_lib")
class TestHttpx:
    """Runs on httpx and on httpx2 (tests/conftest.py)."""

    def test_the_normalized_form(
        self, httptrace_recorder: Recorder, httptrace_server: Any, httpx_lib: ModuleType
    ) -> None:
        with httptrace_server.client() as client:
            client.get("/")
            client.get("/close")
            client.get("/status/404")
        lib = httpx_lib.__name__
        sent = [
            *_headers(lib),
            {"hook": "wrote_headers"},
            {"hook": "wrote_request", "err": None},
            {"hook": "got_first_response_byte"},
        ]
        common = {"method": "GET", "error": None, "source": lib}
        assert httptrace_recorder.normalized() == [
            {
                **common,
                "url": "https://localhost:<port>/",
                "status": 200,
                "connection": 1,
                "outcome": "complete",
                "conn_closed": None,  # not the last request of its connection
                "hooks": [
                    *_new_connection(1),
                    *sent,
                    {"hook": "put_idle_conn", "err": None},
                ],
            },
            {
                **common,
                "url": "https://localhost:<port>/close",
                "status": 200,
                "connection": 1,
                "outcome": "complete",
                "conn_closed": "server",
                "hooks": [
                    {"hook": "get_conn", "host_port": "localhost:<port>"},
                    {"hook": "got_conn", "conn": 1, "reused": True, "was_idle": True},
                    *sent,  # Connection: close: no put_idle_conn (as in Go)
                ],
            },
            {
                **common,
                "url": "https://localhost:<port>/status/404",
                "status": 404,
                "connection": 2,
                "outcome": "complete",
                "conn_closed": "client_closed",  # with the client, at the end
                "hooks": [
                    *_new_connection(2),
                    *sent,
                    {"hook": "put_idle_conn", "err": None},
                ],
            },
        ]

    def test_connections_are_numbered_in_order_of_first_use(
        self, httptrace_recorder: Recorder, httptrace_server: Any
    ) -> None:
        with httptrace_server.client() as a, httptrace_server.client() as b:
            a.get("/")
            b.get("/")
            a.get("/")
        assert [r["connection"] for r in httptrace_recorder.normalized()] == [1, 2, 1]
        second = httptrace_recorder.requests[1]
        assert second.connection is not None and second.connection.id == 2
        alone = second.normalized()  # on its own, its connection is the first
        assert alone["connection"] == 1
        assert {"hook": "got_conn", "conn": 1, "reused": False, "was_idle": False} in (
            alone["hooks"]
        )

    def test_errors_keep_their_type(
        self, httptrace_recorder: Recorder, httptrace_server: Any, httpx_lib: ModuleType
    ) -> None:
        with socket.socket() as unused:  # a port nothing listens on
            unused.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{unused.getsockname()[1]}/"
        with httptrace_server.client() as client:
            with pytest.raises(httpx_lib.RemoteProtocolError):
                client.get("/abort")
            with pytest.raises(httpx_lib.ConnectError):
                client.get(refused)
        aborted, failed = httptrace_recorder.normalized()
        assert (aborted["status"], aborted["error"]) == (200, "RemoteProtocolError")
        # The body broke off: the request failed, its connection with it.
        assert (aborted["outcome"], aborted["conn_closed"]) == (
            "failed",
            "protocol_error",
        )
        assert failed == {
            "method": "GET",
            "url": "http://127.0.0.1:<port>/",
            "status": None,
            "error": "ConnectError",
            "source": httpx_lib.__name__,
            "connection": None,
            "outcome": "failed",
            "conn_closed": None,
            "hooks": [
                {"hook": "get_conn", "host_port": "127.0.0.1:<port>"},
                {"hook": "connect_start", "network": "tcp", "addr": "<addr>"},
                {
                    "hook": "connect_done",
                    "network": "tcp",
                    "addr": "<addr>",
                    "err": "ConnectError",
                },
            ],
        }

    def test_stable_over_repeated_runs(self, httptrace_server: Any) -> None:
        forms = []
        for _ in range(RUNS):
            with Recorder.start() as rec:
                with httptrace_server.client() as client:
                    for path in ("/", "/", "/close", "/status/404", "/bytes/10"):
                        client.get(path)
                with httptrace_server.client(http2=True) as client:
                    client.get("/early-hints")
                    client.get("/")
            forms.append(rec.normalized())
        assert all(form == forms[0] for form in forms)
        text = json.dumps(forms[0])
        assert str(httptrace_server.port) not in text
        assert "103" in text and "<date>" in text  # the early hint, its Date pinned


def test_aiohttp_stable_over_repeated_runs(httptrace_server: Any) -> None:
    pytest.importorskip("aiohttp")

    async def scenario() -> None:
        async with httptrace_server.aiohttp_session() as session:
            for path in ("/", "/", "/close", "/status/404"):
                async with session.get(path) as response:
                    await response.read()

    forms = []
    for _ in range(RUNS):
        with Recorder.start() as rec:
            asyncio.run(scenario())
        forms.append(rec.normalized())
    assert all(form == forms[0] for form in forms)
    assert [r["connection"] for r in forms[0]] == [1, 1, 1, 2]


def test_requests_stable_over_repeated_runs(httptrace_server: Any) -> None:
    pytest.importorskip("requests")
    forms = []
    for _ in range(RUNS):
        with Recorder.start() as rec, httptrace_server.requests_session() as session:
            for path in ("/", "/", "/close", "/status/404"):
                session.get(httptrace_server.url(path))
        forms.append(rec.normalized())
    assert all(form == forms[0] for form in forms)
    assert [r["connection"] for r in forms[0]] == [1, 1, 1, 2]


# -- with the snapshot libraries, as a user runs them ----------------------------------

SCENARIO = """
    def scenario(server):
        with server.client() as client:
            client.get("/")
            client.get("/status/404")
"""


def test_inline_snapshot_create_check_fix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        textwrap.dedent(SCENARIO)
        + textwrap.dedent(
            """
            from inline_snapshot import snapshot

            def test_pinned(httptrace_recorder, httptrace_server):
                scenario(httptrace_server)
                assert httptrace_recorder.normalized() == snapshot()
            """
        )
    )
    monkeypatch.delenv("CI", raising=False)
    # Under our own -n 2, the subprocess would inherit the worker's variable, and
    # inline-snapshot does not write snapshots under xdist.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    args = ("-p", "httptrace", "-p", "inline_snapshot", "-W", "error")
    result = pytester.runpytest_subprocess(*args, "--inline-snapshot=create")
    # inline-snapshot's own teardown error in create mode: "the value is now
    # created and you can ignore this message".
    result.assert_outcomes(passed=1, errors=1)
    source = (pytester.path / "test_inline_snapshot_create_check_fix.py").read_text()
    assert "'https://localhost:<port>/status/404'" in source
    # The default mode, as in CI: compares, never writes.
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    # The lifecycle changes (one more request): the snapshot fails, until fixed.
    changed = source.replace(
        'client.get("/")', 'client.get("/")\n        client.get("/")'
    )
    (pytester.path / "test_inline_snapshot_create_check_fix.py").write_text(changed)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(failed=1)
    monkeypatch.delenv("CI")
    result = pytester.runpytest_subprocess(*args, "--inline-snapshot=fix")
    result.assert_outcomes(passed=1, errors=1)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)


def test_syrupy_and_xdist_workers_agree(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # ours, under -n 2
    pytester.makepyfile(
        textwrap.dedent(SCENARIO)
        + textwrap.dedent(
            """
            import json, os, pathlib
            import pytest

            def test_pinned(httptrace_recorder, httptrace_server, snapshot):
                scenario(httptrace_server)
                assert httptrace_recorder.normalized() == snapshot

            @pytest.mark.parametrize("run", range(8))
            def test_same(run, httptrace_recorder, httptrace_server):
                scenario(httptrace_server)
                worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
                out = pathlib.Path("out", f"{run}-{worker}.json")
                out.parent.mkdir(exist_ok=True)
                out.write_text(json.dumps(httptrace_recorder.normalized()))
            """
        )
    )
    args = ("-p", "httptrace", "-p", "syrupy", "-W", "error")
    result = pytester.runpytest_subprocess(*args, "--snapshot-update")
    result.assert_outcomes(passed=9)
    assert list(pytester.path.glob("__snapshots__/*.ambr"))
    assert len(list(pytester.path.glob("out/*-main.json"))) == 8
    for path in pytester.path.glob("out/*.json"):
        path.unlink()
    result = pytester.runpytest_subprocess(*args, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=9)
    outputs = sorted(pytester.path.glob("out/*.json"))
    assert {p.stem.split("-")[1] for p in outputs} == {"gw0", "gw1"}
    forms = [json.loads(p.read_text()) for p in outputs]
    assert len(forms) == 8 and all(form == forms[0] for form in forms)
