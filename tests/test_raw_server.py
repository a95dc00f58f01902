"""The scripted raw server: what hypercorn will not do on HTTP/1.1, byte for byte."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pytest_httptrace.raw_server import (
    Close,
    Drain,
    Handshake,
    RawScriptError,
    RawServer,
    ReadBody,
    ReadHead,
    Reset,
    Send,
    Sleep,
    start_raw_server,
)

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def _connect(raw: RawServer) -> socket.socket:
    """A plain socket client (TLS if the server speaks it), for exact bytes."""
    tcp = socket.create_connection(("127.0.0.1", raw.port), timeout=3)
    if not raw.tls:
        return tcp
    return raw.ssl_context().wrap_socket(tcp, server_hostname="localhost")


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- interim responses -----------------------------------------------------------------


def test_103_over_http11_reaches_the_client_as_sent(
    httptrace_raw_server: RawServer,
) -> None:
    raw = httptrace_raw_server
    steps = [
        ReadHead(),
        Send.interim(103, {"Link": "</style.css>; rel=preload"}),
        Send.response(200, "hello"),
        Close(),
    ]
    raw.script(steps, steps)
    with raw.client() as client:
        response = client.get(raw.url("/page"))
    assert (response.status_code, response.text) == (200, "hello")  # 103 skipped
    with _connect(raw) as sock:
        sock.sendall(b"GET /raw HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _read_all(sock) == EARLY_HINTS + HELLO
    httpx_conn, socket_conn = raw.wait()
    assert httpx_conn.received.startswith(b"GET /page HTTP/1.1\r\nHost: localhost:")
    assert httpx_conn.received.endswith(b"\r\n\r\n")
    assert socket_conn.received == b"GET /raw HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert httpx_conn.tls_version is not None and httpx_conn.alpn == "http/1.1"


def test_several_interim_responses_in_a_row(httptrace_raw_server: RawServer) -> None:
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            Send.interim(100),
            Send.interim(102),
            Send.interim(103, [("Link", "</a.js>"), ("Link", "</b.js>")]),
            Send.response(200, "done"),
        ]
    )
    with _connect(raw) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while not received.endswith(b"done"):
            received += sock.recv(65536)
    assert received.split(b"\r\n\r\n")[:3] == [
        b"HTTP/1.1 100 Continue",
        b"HTTP/1.1 102 Processing",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\nLink: </b.js>",
    ]


# -- a final response without 100 Continue ---------------------------------------------


def test_417_without_100_httpx_sends_the_body_anyway(
    httptrace_raw_server: RawServer,
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            Send.response(417, "no", {"Connection": "close"}),
            Drain(0.2),
            Close(),
        ]
    )
    with raw.client() as client:
        response = client.post(
            raw.url("/upload"),
            content=b"B" * 1000,
            headers={"Expect": "100-continue"},
        )
    assert response.status_code == 417
    [conn] = raw.wait()
    head, _, body = conn.received.partition(b"\r\n\r\n")
    assert b"\r\nexpect: 100-continue\r\n" in head.lower() + b"\r\n"
    assert body == b"B" * 1000  # stock httpx does not wait for 100 Continue


def test_417_without_100_a_waiting_client_sends_no_body(
    httptrace_raw_server: RawServer,
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [ReadHead(), Send.response(417, headers={"Connection": "close"}), Drain(0.1)]
    )
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    with _connect(raw) as sock:
        sock.sendall(head)
        assert sock.recv(65536).startswith(b"HTTP/1.1 417 Expectation Failed\r\n")
        [conn] = raw.wait()
    assert conn.received == head  # nothing after the head


def test_read_body_by_content_length_then_answer(
    httptrace_raw_server: RawServer,
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.response(201, "stored")])
    with raw.client() as client:
        response = client.put(raw.url("/"), content=b"0123456789")
    assert response.status_code == 201
    [conn] = raw.wait()
    assert conn.received.endswith(b"\r\n\r\n0123456789")
    assert conn.steps_done == 3


def test_read_body_chunked(httptrace_raw_server: RawServer) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.response(204)])

    def chunks() -> Iterator[bytes]:
        yield b"ab"
        yield b"cd"

    with raw.client() as client:
        assert client.post(raw.url("/"), content=chunks()).status_code == 204
    [conn] = raw.wait()
    assert conn.received.endswith(b"\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")


# -- pieces, resets, truncation, stale keep-alive, malformed ---------------------------


def test_response_in_pieces_with_pauses(httptrace_raw_server: RawServer) -> None:
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
            Sleep(0.02),
            Send(b"01234"),
            Sleep(0.02),
            Send(b"56789"),
        ]
    )
    with raw.client() as client, client.stream("GET", raw.url("/")) as response:
        pieces = list(response.iter_raw())
    assert pieces == [b"01234", b"56789"]


@pytest.mark.parametrize(
    "steps",
    [
        [ReadHead(), Reset()],
        [ReadHead(), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), Reset()],
        [ReadHead(), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01"), Reset()],
        [ReadHead(), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01"), Close()],
        [ReadHead(), Close()],
        [ReadHead(), Send(b"HTTP/1.1 abc\r\n\r\n")],
        [ReadHead(), Send(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")],
    ],
    ids=[
        "reset-after-request",
        "reset-after-head",
        "reset-mid-body",
        "close-mid-body",
        "close-before-response",
        "malformed-status-line",
        "malformed-header",
    ],
)
def test_broken_responses_are_client_errors(
    httptrace_raw_server: RawServer, steps: list[Any]
) -> None:
    raw = httptrace_raw_server
    raw.script(steps)
    with raw.client(timeout=3) as client, pytest.raises(httpx.TransportError):
        client.get(raw.url("/"))


def test_stale_keep_alive_connection_is_replaced(
    httptrace_raw_server: RawServer,
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [ReadHead(), Send.response(200, "first"), Close()],
        [ReadHead(), Send.response(200, "second")],
    )
    with raw.client() as client:
        assert client.get(raw.url("/")).text == "first"
        raw.wait(1)  # connection 0 is closed by now: the client's is stale
        assert client.get(raw.url("/")).text == "second"
    assert len(raw.connections) == 2


def test_plain_raw_server(httptrace_raw_http_server: RawServer) -> None:
    raw = httptrace_raw_http_server
    assert raw.url("/x").startswith("http://localhost:")
    raw.script([ReadHead(), Send(HELLO)])
    with raw.client() as client:
        assert client.get(raw.url("/")).text == "hello"
    [conn] = raw.wait()
    assert (conn.tls_version, conn.alpn) == (None, None)
    assert conn.received.startswith(b"GET / HTTP/1.1\r\n")


# -- what goes wrong is reported -------------------------------------------------------


def test_unscripted_connection_is_reported(httptrace_raw_server: RawServer) -> None:
    raw = httptrace_raw_server
    with raw.client(timeout=3) as client, pytest.raises(httpx.TransportError):
        client.get(raw.url("/"))
    with pytest.raises(RawScriptError, match="connection 0: nobody scripted it"):
        raw.check()
    raw.check()  # reported once


def test_failed_read_step_is_reported(httptrace_raw_server: RawServer) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(size=100, timeout=0.05), Send(HELLO)])
    with _connect(raw) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\nonly ten b")
        raw.wait()
    [error] = raw.pop_errors()
    assert error == (
        "connection 0, step 1 ReadBody(size=100, timeout=0.05): "
        "nothing more after 0.05s (10 unread bytes)"
    )


def test_client_closing_during_a_read_is_reported(
    httptrace_raw_server: RawServer,
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead()])
    with _connect(raw) as sock:
        sock.sendall(b"GET / HT")
    raw.wait()
    [error] = raw.pop_errors()
    assert error.startswith("connection 0, step 0 ReadHead(timeout=5.0): ")
    assert error.endswith("the client closed the connection (8 unread bytes)")


def test_reset_interrupts_a_waiting_script() -> None:
    with start_raw_server() as raw:
        raw.script([ReadHead(timeout=60)])
        tcp = socket.create_connection(("127.0.0.1", raw.port), timeout=3)
        try:
            while not raw.connections:
                threading.Event().wait(0.001)
            raw.reset()  # must not wait for the 60 s read
            names = [thread.name for thread in threading.enumerate()]
            assert "httptrace-raw-conn-0" not in names
        finally:
            tcp.close()
    names = [thread.name for thread in threading.enumerate()]
    assert f"httptrace-raw-server-{raw.port}" not in names


# -- declaring scripts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Send("text"), TypeError, r"Send\(\) takes bytes, got str 'text'"),
        (
            lambda: Sleep(-1),
            ValueError,
            r"Sleep\(seconds=...\) must be .* >= 0, got -1",
        ),
        (lambda: Drain(float("inf")), ValueError, r"Drain\(seconds=...\)"),
        (lambda: ReadHead(timeout=0), ValueError, r"> 0, got 0"),
        (lambda: ReadBody(size=-1), ValueError, r"int >= 0, got -1"),
        (lambda: Send.interim(200), ValueError, r"1xx status, got 200"),
    ],
)
def test_bad_steps_fail_at_declaration(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    ("connections", "error", "message"),
    [
        ((ReadHead(),), TypeError, r"got the step ReadHead\(timeout=5.0\); .*\*list\*"),
        (
            ([ReadHead],),
            TypeError,
            r"step 0: got the class ReadHead; write ReadHead\(\)",
        ),
        (([b"GET"],), TypeError, r"step 0: b'GET' is not a step"),
        (([Close(), Send(b"x")],), ValueError, r"Close\(\) must be the last step"),
        (([], "oops"), TypeError, r"connection 1: expected a list of steps"),
        (
            ([Handshake(), Sleep(0), Handshake()],),
            ValueError,
            r"connection 0: Handshake\(\) at steps \[0, 2\]; a connection has one",
        ),
        (
            ([Sleep(0.1), ReadHead(), Handshake()],),
            ValueError,
            r"step 1: ReadHead\(timeout=5.0\) before Handshake\(\); only Sleep\(\)",
        ),
    ],
)
def test_bad_scripts_fail_at_declaration(
    httptrace_raw_server: RawServer,
    connections: tuple[Any, ...],
    error: type,
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        httptrace_raw_server.script(*connections)
    assert httptrace_raw_server.wait(timeout=0.01) == []  # nothing was scripted


def test_send_response_builds_http11_bytes() -> None:
    assert Send.response(200, "hello").data == HELLO
    assert (
        Send.response(204, content_length=False).data
        == b"HTTP/1.1 204 No Content\r\n\r\n"
    )
    chunked = Send.response(200, headers={"Transfer-Encoding": "chunked"}, reason="Yes")
    assert chunked.data == b"HTTP/1.1 200 Yes\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert Send(bytearray(b"ab")).data == b"ab"


def test_tls_raw_server_needs_the_ca(httptrace_raw_server: RawServer) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(timeout=1)])
    untrusted = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with (
        socket.create_connection(("127.0.0.1", raw.port), timeout=3) as tcp,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusted.wrap_socket(tcp, server_hostname="localhost")
    raw.wait()
    [error] = raw.pop_errors()
    assert error.startswith("connection 0, step 0 ReadHead(timeout=1): TLS handshake")


def test_handshake_where_the_script_says(
    httptrace_raw_server: RawServer, httptrace_recorder: Any
) -> None:
    """A server slow to answer the ClientHello: the client's TLS phase holds the
    wait (not connect, not the response), and the request goes on as usual."""
    raw = httptrace_raw_server
    raw.script([Sleep(0.3), Handshake(), ReadHead(), Send(HELLO)])
    with raw.client() as client:
        assert client.get("/").text == "hello"
    raw.wait()
    (request,) = httptrace_recorder.requests
    phases = {p.name: p.duration for p in request.phases}
    assert phases["tls"] >= 0.25
    assert phases["connect"] < 0.25 and phases["wait"] < 0.25
    assert raw.connections[0].tls_version is not None


def test_handshake_needs_a_tls_server(httptrace_raw_http_server: RawServer) -> None:
    with pytest.raises(ValueError, match=r"Handshake\(\) on a server without TLS"):
        httptrace_raw_http_server.script([Handshake(), ReadHead()])
    assert httptrace_raw_http_server.wait(timeout=0.01) == []  # nothing was scripted
