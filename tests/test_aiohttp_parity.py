"""aiohttp's ClientSession against Go's sequences: real sockets, real handshakes, the
local TLS server (HTTP/1.1: aiohttp has no HTTP/2 client)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
from typing import Any

import aiohttp
from aiohttp_driver import Result, fetch, run, visible

from pytest_httptrace import (
    ClientTrace,
    TLSConnectionState,
    assert_concurrent,
    assert_connections_opened,
    assert_reused,
    find_leaks,
    with_client_trace,
)
from pytest_httptrace.recorder import Recorder

COLD = [
    "get_conn",
    "dns_start",
    "dns_done",
    "connect_start",
    "connect_done",
    "tls_handshake_start",
    "tls_handshake_done",
    "got_conn",
    "wrote_headers",
    "wrote_request",
    "got_first_response_byte",
]
WARM = [
    "get_conn",
    "got_conn",
    "wrote_headers",
    "wrote_request",
    "got_first_response_byte",
]


def test_cold_then_reused(httptrace_server: Any, httptrace_recorder: Recorder) -> None:
    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return [await fetch(session, "/"), await fetch(session, "/")]

    results = run(httptrace_server, scenario)
    assert results == [Result(200, b"hello")] * 2
    first, second = httptrace_recorder.requests
    assert visible(first.hooks) == [*COLD, "put_idle_conn"]
    assert visible(second.hooks) == [*WARM, "put_idle_conn"]

    cold, warm = first.got_conn, second.got_conn
    assert cold is not None and warm is not None
    assert (cold.reused, cold.was_idle, cold.idle_time) == (False, False, 0.0)
    assert warm.reused and warm.was_idle and warm.idle_time > 0
    assert warm.conn is cold.conn
    assert isinstance(cold.conn, aiohttp.client_proto.ResponseHandler)

    port = httptrace_server.port
    assert first.getcall("get_conn").args == {"host_port": f"localhost:{port}"}
    assert first.getcall("dns_start").args == {"host": "localhost"}
    dns_done = first.getcall("dns_done").args
    assert dns_done["err"] is None and "127.0.0.1" in dns_done["addrs"]
    assert dns_done["coalesced"] is False
    connect_done = first.getcall("connect_done").args
    assert connect_done["network"] == "tcp" and connect_done["err"] is None
    assert connect_done["addr"].endswith(f":{port}")

    state, err = first.getcall("tls_handshake_done").raw
    assert err is None and isinstance(state, TLSConnectionState)
    assert state.version in ("TLSv1.2", "TLSv1.3") and state.cipher
    assert state.server_name == "localhost" and state.peer_certificate
    assert state.handshake_complete
    # aiohttp offers no ALPN with the context it is given: nothing was negotiated.
    assert state.negotiated_protocol is None
    assert first.getcall("wrote_request").args == {"err": None}
    assert first.getcall("put_idle_conn").args == {"err": None}
    assert first.connection is second.connection is not None
    assert first.connection.protocol == "HTTP/1.1"
    assert first.connection.tls == state
    assert first.connection.peer_addr == connect_done["addr"]
    assert first.status == second.status == 200
    assert first.source is not None and first.source.library == "aiohttp"
    assert first.source.version == aiohttp.__version__
    assert_reused(second)
    assert_connections_opened(httptrace_recorder, 1)
    assert not find_leaks(httptrace_recorder)
    # The user's line: the driver's request, not aiohttp's frames.
    assert first.origin is not None and "/tests/aiohttp_driver.py:" in first.origin


def test_header_fields_in_wire_order(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    headers = {"X-First": "1", "X-Second": "2", "X-Text": "café"}
    run(httptrace_server, lambda s: fetch(s, "/", headers=headers))
    (request,) = httptrace_recorder.requests
    fields = [
        (e.args["key"], e.args["values"])
        for e in request.events
        if e.hook == "wrote_header_field"
    ]
    [head] = httptrace_server.log.requests
    assert [k.lower() for k, _ in fields] == [k.lower() for k, _ in head.headers]
    assert ("X-First", ["1"]) in fields and ("X-Second", ["2"]) in fields
    # aiohttp's own text (it writes it as UTF-8), as plain strings.
    assert ("X-Text", ["café"]) in fields
    assert all(type(k) is str and type(v) is str for k, [v] in fields)
    assert fields[0][0] == "Host"
    last_field = max(
        i for i, e in enumerate(request.events) if e.hook == "wrote_header_field"
    )
    assert request.events[last_field + 1].hook == "wrote_headers"


def test_connection_close(httptrace_server: Any, httptrace_recorder: Recorder) -> None:
    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return [await fetch(session, "/close"), await fetch(session, "/")]

    first_result, _ = run(httptrace_server, scenario)
    assert isinstance(first_result, Result) and first_result.status == 200
    first, second = httptrace_recorder.requests
    # Not kept: Go calls no PutIdleConn, and neither do we.
    assert visible(first.hooks) == COLD
    assert second.got_conn is not None and not second.got_conn.reused
    assert first.connection is not second.connection
    assert first.connection is not None and first.connection.closed_at is not None
    assert first.closed_at is not None
    assert_connections_opened(httptrace_recorder, 2)


def test_post_body(httptrace_server: Any, httptrace_recorder: Recorder) -> None:
    body = b"x" * 100_000
    result = run(httptrace_server, lambda s: fetch(s, "/echo", "POST", data=body))
    assert isinstance(result, Result) and b'"body_size": 100000' in result.body
    (request,) = httptrace_recorder.requests
    assert visible(request.hooks) == [*COLD, "put_idle_conn"]
    keys = [e.args["key"] for e in request.getcalls("wrote_header_field")]
    assert "Content-Length" in keys
    assert request.method == "POST"


def test_head(httptrace_server: Any, httptrace_recorder: Recorder) -> None:
    result = run(httptrace_server, lambda s: fetch(s, "/", "HEAD"))
    assert isinstance(result, Result) and (result.status, result.body) == (200, b"")
    (request,) = httptrace_recorder.requests
    assert visible(request.hooks) == [*COLD, "put_idle_conn"]
    assert request.method == "HEAD"


def test_unreleased_response_while_a_second_request_dials(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        # Chunks 0.5 s apart: the body cannot be complete when it is released.
        held = await session.get("/stream/3?gap=0.5")
        try:
            assert find_leaks(httptrace_recorder) == httptrace_recorder.requests
            assert await fetch(session, "/") == Result(200, b"hello")
            leaks = find_leaks(httptrace_recorder)
            assert leaks == httptrace_recorder.requests[:1]
        finally:
            held.release()

    run(httptrace_server, scenario)
    held, second = httptrace_recorder.requests
    assert second.got_conn is not None and not second.got_conn.reused
    assert held.connection is not second.connection
    assert "put_idle_conn" not in held.hooks  # released before its body was read
    assert held.closed_at is not None and held.returned_at is not None
    assert held.closed_at > second.started_at
    assert not find_leaks(httptrace_recorder)
    assert_connections_opened(httptrace_recorder, 2)


def test_concurrent_requests_in_two_tasks(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return list(
            await asyncio.gather(
                fetch(session, "/delay/0.2"), fetch(session, "/delay/0.2")
            )
        )

    assert run(httptrace_server, scenario) == [Result(200, b"delayed 0.2s")] * 2
    a, b = httptrace_recorder.requests
    assert visible(a.hooks) == visible(b.hooks) == [*COLD, "put_idle_conn"]
    assert a.connection is not b.connection
    assert_concurrent(a, b)
    assert_connections_opened(httptrace_recorder, 2)
    # The two cold lookups ran at once: aiohttp shares one (Go's "coalesced").
    coalesced = sorted(r.getcall("dns_done").args["coalesced"] for r in (a, b))
    assert coalesced == [False, True]


def test_dns_cache_hit_is_no_lookup(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return [await fetch(session, "/"), await fetch(session, "/")]

    run(httptrace_server, scenario, connector={"force_close": True})
    first, second = httptrace_recorder.requests
    assert visible(first.hooks) == COLD  # force_close: not kept, no put_idle_conn
    # Dialed anew, but the name came from aiohttp's cache: nothing was looked up.
    assert visible(second.hooks) == [h for h in COLD if not h.startswith("dns_")]
    assert second.got_conn is not None and not second.got_conn.reused


def test_dns_cache_off_looks_up_every_time(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return [await fetch(session, "/"), await fetch(session, "/")]

    connector = {"force_close": True, "use_dns_cache": False}
    run(httptrace_server, scenario, connector=connector)
    assert [visible(r.hooks) for r in httptrace_recorder.requests] == [COLD, COLD]


def test_connection_refused(httptrace_recorder: Recorder) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed

    async def scenario() -> Any:
        async with aiohttp.ClientSession() as session:
            return await fetch(session, f"http://127.0.0.1:{port}/")

    error = asyncio.run(scenario())
    assert isinstance(error, aiohttp.ClientConnectorError)
    (request,) = httptrace_recorder.requests
    assert request.hooks == [
        "get_conn",
        "connect_start",
        "connect_done",
    ]  # an IP: no DNS
    done = request.getcall("connect_done").args
    assert done["addr"] == f"127.0.0.1:{port}"
    assert isinstance(done["err"], ConnectionRefusedError)
    assert request.error is error and request.connection is None
    assert not find_leaks(httptrace_recorder)


def test_untrusted_certificate(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    connector = {"ssl": ssl.create_default_context()}  # not our CA
    error = run(httptrace_server, lambda s: fetch(s, "/"), connector=connector)
    assert isinstance(error, aiohttp.ClientConnectorCertificateError)
    (request,) = httptrace_recorder.requests
    assert request.hooks == COLD[:7]
    state, err = request.getcall("tls_handshake_done").raw
    assert state == TLSConnectionState() and isinstance(
        err, ssl.SSLCertVerificationError
    )
    assert request.got_conn is None and request.error is error


def test_unresolvable_name(httptrace_recorder: Recorder) -> None:
    async def scenario() -> Any:
        async with aiohttp.ClientSession() as session:
            return await fetch(session, "http://name.invalid/")

    error = asyncio.run(scenario())
    assert isinstance(error, aiohttp.ClientConnectorDNSError)
    (request,) = httptrace_recorder.requests
    assert request.hooks == ["get_conn", "dns_start", "dns_done"]
    done = request.getcall("dns_done").args
    assert done["addrs"] == [] and isinstance(done["err"], OSError)
    assert request.error is error


def test_redirect_followed(httptrace_server: Any, httptrace_recorder: Recorder) -> None:
    assert run(httptrace_server, lambda s: fetch(s, "/redirect/2")) == Result(
        200, b"hello"
    )
    hops = httptrace_recorder.requests
    assert [r.status for r in hops] == [302, 302, 200]
    assert visible(hops[0].hooks)[: len(COLD)] == COLD
    for hop, following in itertools.pairwise(hops):
        # aiohttp releases a redirect at once: its connection is kept only if the
        # (empty) body had arrived by then, else closed. The hooks say which, and
        # the next hop reuses it or dials.
        kept = "put_idle_conn" in hop.hooks
        assert following.got_conn is not None and following.got_conn.reused is kept
        core = [
            h
            for h in visible(following.hooks)
            if h != "put_idle_conn" and not h.startswith("dns_")
        ]
        assert core == (WARM if kept else [h for h in COLD if not h.startswith("dns_")])
    # One call: every hop returned when the call did.
    assert len({r.returned_at for r in hops}) == 1
    assert hops[-1].url.endswith("/")


def test_sessions_made_before_tracing_and_in_other_tasks(
    httptrace_server: Any,
) -> None:
    """No argument, no TraceConfig: any session in the process, made before the
    trace started, used from another task."""
    seen: list[bool] = []

    async def scenario(session: aiohttp.ClientSession) -> None:
        await fetch(session, "/")  # untraced: dials before any trace
        with with_client_trace(ClientTrace(got_conn=lambda i: seen.append(i.reused))):
            await asyncio.create_task(fetch(session, "/"))
        await fetch(session, "/")  # untraced again

    run(httptrace_server, scenario)
    assert seen == [True]  # the connection dialed before the trace: reused


def test_users_trace_configs_keep_working(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    calls: list[str] = []

    async def on_start(session: Any, ctx: Any, params: Any) -> None:
        calls.append("start")

    async def on_end(session: Any, ctx: Any, params: Any) -> None:
        calls.append("end")

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        before = list(session.trace_configs)
        await fetch(session, "/")
        return [before, list(session.trace_configs)]

    before, after = run(httptrace_server, scenario, trace_configs=[config])
    assert calls == ["start", "end"]
    assert before == after == [config]
    (request,) = httptrace_recorder.requests
    assert visible(request.hooks) == [*COLD, "put_idle_conn"]


def test_two_hundred_concurrent_tasks(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    n = 200

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        async def one(i: int) -> Any:
            return await fetch(session, f"/bytes/{i + 1}")

        return list(await asyncio.gather(*(one(i) for i in range(n))))

    results = run(httptrace_server, scenario, connector={"limit": 20})
    assert all(isinstance(r, Result) and r.status == 200 for r in results)
    requests = httptrace_recorder.requests
    assert len(requests) == n
    by_url = {r.url.rsplit("/", 1)[1]: r for r in requests}
    assert sorted(by_url, key=int) == [str(i + 1) for i in range(n)]
    dialed = 0
    for request in requests:
        hooks = visible(request.hooks)
        assert request.got_conn is not None and request.status == 200
        if request.got_conn.reused:
            assert hooks == [*WARM, "put_idle_conn"], request
        else:
            dialed += 1
            assert [h for h in hooks if not h.startswith("dns_")] == [
                h for h in [*COLD, "put_idle_conn"] if not h.startswith("dns_")
            ], request
        assert all(e.request is request for e in request.events)
    assert len(httptrace_recorder.events) == sum(len(r.events) for r in requests)
    assert dialed == len(httptrace_recorder.connections) <= 20
    assert dialed == len(httptrace_server.log.connections)


def test_unix_socket(tmp_path: Any, httptrace_recorder: Recorder) -> None:
    """UnixConnector: no DNS and no TCP dial (aiohttp connects the path itself);
    the connection is new, then reused."""
    path = str(tmp_path / "s.sock")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def scenario() -> list[Any]:
        server = await asyncio.start_unix_server(serve, path)
        async with (
            server,
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=path)
            ) as session,
        ):
            results = [
                await fetch(session, "http://unix/"),
                await fetch(session, "http://unix/"),
            ]
            await session.close()
            server.close()
            return results

    assert asyncio.run(scenario()) == [Result(200, b"ok")] * 2
    first, second = httptrace_recorder.requests
    rest = [
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "put_idle_conn",
    ]
    assert visible(first.hooks) == ["get_conn", "got_conn", *rest]
    assert first.got_conn is not None and not first.got_conn.reused
    assert second.got_conn is not None and second.got_conn.reused
