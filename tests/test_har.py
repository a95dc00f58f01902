"""HAR 1.2 export (`Recorder.to_har`, ``--httptrace-har``): checked by the HAR JSON
schema and read back by haralyzer (and mitmproxy where installed), for every
client library."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from har_check import (
    haralyzer_entries,
    mitmdump,
    mitmdump_flows,
    validate,
)

from pytest_httptrace import Recorder


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "requests.har"
    path.write_text(json.dumps(document))
    return path


def _port(addr: str | None) -> int:
    assert addr is not None
    return int(addr.rpartition(":")[2])


def _check_reuse_then_close(rec: Recorder, tmp_path: Path) -> list[dict[str, Any]]:
    """Four requests (``/``, ``/``, ``/close``, ``/status/404``) on one client:
    schema-valid, and haralyzer reads back our statuses, timings and connections."""
    document = rec.to_har(title="reuse")
    validate(document)
    path = _write(tmp_path, document)
    read = haralyzer_entries(path)
    assert [e.status for e in read] == [200, 200, 200, 404]
    assert [e.request.method for e in read] == ["GET"] * 4
    first, second, third, fourth = (e.timings for e in read)
    assert first["dns"] >= 0 and first["connect"] >= first["ssl"] > 0
    for reused in (second, third):  # a reused connection: no dns, connect, ssl
        assert (reused["dns"], reused["connect"], reused["ssl"]) == (-1, -1, -1)
    assert fourth["connect"] >= fourth["ssl"] > 0  # /close: a new connection
    ports = [_port(r.connection.local_addr) for r in rec.requests if r.connection]
    assert [e.port for e in read] == ports
    assert ports[0] == ports[1] == ports[2] != ports[3]
    assert [e.raw_entry["_reused"] for e in read] == [False, True, True, False]
    assert all(e.raw_entry["_leaked"] is False for e in read)
    assert all(e.raw_entry["_incomplete"] is False for e in read)
    assert {e.serverAddress for e in read} <= {"127.0.0.1", "::1"}
    entries: list[dict[str, Any]] = document["log"]["entries"]
    return entries


# -- httpx and httpx2 ------------------------------------------------------------------


@pytest.mark.usefixtures("httpx_lib")
class TestHttpx:
    """Runs on httpx and on httpx2 (tests/conftest.py)."""

    def test_reuse_then_close(
        self, httptrace_recorder: Recorder, httptrace_server: Any, tmp_path: Path
    ) -> None:
        with httptrace_server.client() as client:
            for path in ("/", "/?q=1&empty=", "/close", "/status/404"):
                client.get(path)
        entries = _check_reuse_then_close(httptrace_recorder, tmp_path)
        first = entries[0]
        assert first["request"]["httpVersion"] == "HTTP/1.1"
        names = [h["name"].lower() for h in first["request"]["headers"]]
        assert names[:1] == ["host"] and "user-agent" in names
        assert entries[1]["request"]["queryString"] == [
            {"name": "q", "value": "1"},
            {"name": "empty", "value": ""},
        ]
        lib = httptrace_recorder.requests[0].source
        assert lib is not None
        assert first["_source"] == str(lib)

    def test_http2_and_early_hints(
        self, httptrace_recorder: Recorder, httptrace_server: Any, tmp_path: Path
    ) -> None:
        with httptrace_server.client(http2=True) as client:
            client.get("/early-hints")
            client.get("/")
        document = httptrace_recorder.to_har()
        validate(document)
        read = haralyzer_entries(_write(tmp_path, document))
        assert [e.response.httpVersion for e in read] == ["HTTP/2.0"] * 2
        assert read[0].port == read[1].port
        hints = read[0].raw_entry["_informational"]
        assert [h["status"] for h in hints] == [103]
        assert read[1].timings["connect"] == -1

    def test_post_body_size(
        self, httptrace_recorder: Recorder, httptrace_server: Any
    ) -> None:
        with httptrace_server.client() as client:
            client.post("/echo", content=b"x" * 123)
        [entry] = httptrace_recorder.to_har()["log"]["entries"]
        assert entry["request"]["bodySize"] == 123
        assert entry["response"]["bodySize"] == -1  # the hooks never see the body

    def test_leaked_response_is_a_valid_entry(self, httptrace_server: Any) -> None:
        with Recorder.start() as rec, httptrace_server.client() as client:
            request = client.build_request("GET", "/stream/3")
            response = client.send(request, stream=True)
            document = rec.to_har()
            response.close()
        validate(document)
        [entry] = document["log"]["entries"]
        assert entry["response"]["status"] == 200
        assert (entry["_leaked"], entry["_incomplete"]) == (True, True)

    def test_failed_requests_are_valid_entries(
        self, httptrace_recorder: Recorder, httptrace_server: Any, tmp_path: Path
    ) -> None:
        with socket.socket() as unused:  # a port nothing listens on
            unused.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{unused.getsockname()[1]}/"
        with httptrace_server.client() as client:
            with pytest.raises(httpx.HTTPError):
                client.get("/abort")
            with pytest.raises(httpx.ConnectError):
                client.get(refused)
        document = httptrace_recorder.to_har()
        validate(document)
        aborted, failed = document["log"]["entries"]
        for entry in (aborted, failed):
            assert entry["_incomplete"] is True
            assert entry["_error"]
        assert failed["response"]["status"] == 0
        assert failed["timings"]["send"] == failed["timings"]["wait"] == 0
        assert "connection" not in failed and "serverIPAddress" not in failed
        assert [e.status for e in haralyzer_entries(_write(tmp_path, document))] == [
            aborted["response"]["status"],
            0,
        ]


# -- the other sources -----------------------------------------------------------------


def test_aiohttp(
    httptrace_recorder: Recorder, httptrace_server: Any, tmp_path: Path
) -> None:
    pytest.importorskip("aiohttp")

    async def main() -> None:
        async with httptrace_server.aiohttp_session() as session:
            for path in ("/", "/", "/close", "/status/404"):
                async with session.get(path) as response:
                    await response.read()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    entries = _check_reuse_then_close(httptrace_recorder, tmp_path)
    assert entries[0]["_source"].startswith("aiohttp ")


def test_requests(
    httptrace_recorder: Recorder, httptrace_server: Any, tmp_path: Path
) -> None:
    pytest.importorskip("requests")
    with httptrace_server.requests_session() as session:
        for path in ("/", "/", "/close", "/status/404"):
            session.get(httptrace_server.url(path))
    entries = _check_reuse_then_close(httptrace_recorder, tmp_path)
    assert entries[0]["_source"].startswith("urllib3 ")


# -- mitmproxy ------------------------------------------------------------------------


def test_mitmproxy_imports_the_file(
    httptrace_recorder: Recorder, httptrace_server: Any, tmp_path: Path
) -> None:
    executable = mitmdump()
    if executable is None:
        pytest.skip("mitmdump not installed (not part of the test extra)")
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    with httptrace_server.client() as client:
        client.get("/")
        client.get("/status/404")
        with pytest.raises(httpx.ConnectError):
            client.get(refused)  # an incomplete entry: status 0
    with httptrace_server.client(http2=True) as client:
        client.get("/early-hints")
    document = httptrace_recorder.to_har()
    validate(document)
    path = _write(tmp_path, document)
    lines = [line.strip() for line in mitmdump_flows(executable, path).splitlines()]
    requests = [line.partition(": ")[2] for line in lines if "GET " in line]
    responses = [line.split()[1] for line in lines if line.startswith("<<")]
    assert requests == [
        "GET " + httptrace_server.url("/"),
        "GET " + httptrace_server.url("/status/404"),
        "GET " + refused,
        "GET " + httptrace_server.url("/early-hints"),
    ]
    assert responses == ["200", "404", "0", "200"]
