"""Our end hooks (body_closed, request_done, conn_closed) from real httpx traffic:
how each request ended and why each connection closed, sync and async, HTTP/1.1 and
HTTP/2, against the local TLS server and the scripted raw server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpcore
import httpx
import pytest

from pytest_httptrace import (
    ClientTrace,
    assert_hook_sequence,
    assert_new_connection,
    assert_no_leaks,
    assert_reused,
    hook,
    reuse_verdict,
    with_client_trace,
)
from pytest_httptrace.raw_server import Close, RawServer, ReadHead, Reset, Send, Sleep
from pytest_httptrace.recorder import Recorder, RequestRecord

pytest_plugins = ["pytester"]

#: Every test runs on httpx and on httpx2 (conftest.py).
pytestmark = pytest.mark.usefixtures("httpx_lib")

MODES = [
    pytest.param("sync", False, id="sync-h1"),
    pytest.param("async", False, id="async-h1"),
    pytest.param("sync", True, id="sync-h2"),
    pytest.param("async", True, id="async-h2"),
]
H1 = [pytest.param("sync", id="sync"), pytest.param("async", id="async")]


class Response:
    """A streamed response, sync or async alike."""

    def __init__(self, response: Any, is_async: bool) -> None:
        self.r, self.is_async = response, is_async

    async def read(self) -> bytes:
        if self.is_async:
            data: bytes = await self.r.aread()
            return data
        data = self.r.read()
        return data

    async def first_chunk(self) -> bytes:
        if self.is_async:
            async for chunk in self.r.aiter_raw():
                return bytes(chunk)
        else:
            for chunk in self.r.iter_raw():
                return bytes(chunk)
        return b""

    async def close(self) -> None:
        if self.is_async:
            await self.r.aclose()
        else:
            self.r.close()


class Client:
    """One httpx client, sync or async, behind one async interface (the sync one is
    driven from a coroutine: no other task runs meanwhile)."""

    def __init__(self, client: Any, is_async: bool) -> None:
        self.c, self.is_async = client, is_async

    async def get(self, url: str) -> Any:
        if self.is_async:
            return await self.c.get(url)
        return self.c.get(url)

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[Response]:
        if self.is_async:
            async with self.c.stream("GET", url) as r:
                yield Response(r, True)
        else:
            with self.c.stream("GET", url) as r:
                yield Response(r, False)

    async def open(self, url: str) -> Response:
        """A streamed response left open (the caller closes it, or not)."""
        request = self.c.build_request("GET", url)
        if self.is_async:
            return Response(await self.c.send(request, stream=True), True)
        return Response(self.c.send(request, stream=True), False)

    async def close(self) -> None:
        if self.is_async:
            await self.c.aclose()
        else:
            self.c.close()


Scenario = Callable[[Client], Awaitable[None]]


def run(mode: str, server: Any, scenario: Scenario, **kwargs: Any) -> None:
    """Run ``scenario`` with a client of ``server`` (closed at the end)."""

    async def main() -> None:
        is_async = mode == "async"
        raw = server.async_client(**kwargs) if is_async else server.client(**kwargs)
        client = Client(raw, is_async)
        try:
            await scenario(client)
        finally:
            await client.close()

    asyncio.run(main())


def ends(request: RequestRecord) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.hook, {k: v for k, v in e.args.items() if k not in ("conn", "err")})
        for e in request.ends
    ]


# -- how a request ended ------------------------------------------------------------


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_a_response_read_to_its_end_is_complete(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    url = httptrace_server.url("/")

    async def scenario(client: Client) -> None:
        assert (await client.get(url)).status_code == 200
        assert (await client.get(url)).status_code == 200

    run(mode, httptrace_server, scenario, http2=http2)
    first, second = httptrace_recorder.requests
    for request in (first, second):
        assert request.outcome == "complete"
        assert request.done_at is not None and request.closed_at is not None
        assert request.getcall("body_closed").args == {"read_to_end": True, "err": None}
    assert ends(first) == [
        ("body_closed", {"read_to_end": True}),
        ("request_done", {"outcome": "complete"}),
    ]
    # The connection closed with its client, heard on the last request it served.
    conn = second.connection
    assert conn is not None and conn is first.connection
    assert conn.close_reason == "client_closed"
    assert ends(second)[-1] == ("conn_closed", {"reason": "client_closed"})
    assert_hook_sequence(
        second,
        [..., "got_first_response_byte", ..., "body_closed", "request_done", ...],
    )
    assert_hook_sequence(first, [..., hook("request_done", outcome="complete"), ...])


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_a_response_closed_before_its_end_is_closed_early(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    url = httptrace_server.url("/stream/20?gap=0.05")

    async def scenario(client: Client) -> None:
        async with client.stream(url) as response:
            assert await response.first_chunk()
        assert (await client.get(httptrace_server.url("/"))).status_code == 200

    run(mode, httptrace_server, scenario, http2=http2)
    early, after = httptrace_recorder.requests
    assert early.outcome == "closed_early"
    assert early.getcall("body_closed").args["read_to_end"] is False
    assert after.outcome == "complete"
    conn = early.connection
    assert conn is not None
    if http2:  # the stream is reset, the connection kept
        assert after.connection is conn
        assert conn.close_reason == "client_closed"
    else:  # HTTP/1.1 cannot keep a connection with a body left unread
        assert conn.close_reason == "client"
        assert after.connection is not conn
        assert ends(early)[0] == ("conn_closed", {"reason": "client"})
        verdict = reuse_verdict(after, httptrace_recorder)
        assert "was closed by the client" in verdict.reason
        assert "before its body was read to the end" in verdict.reason
        assert verdict.cause == "client"


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_a_response_that_breaks_off_failed(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(client: Client) -> None:
        with pytest.raises(httpx.TransportError):
            await client.get(httptrace_server.url("/abort"))

    run(mode, httptrace_server, scenario, http2=http2)
    [request] = httptrace_recorder.requests
    assert request.outcome == "failed"
    done = request.getcall("request_done").args
    assert done["outcome"] == "failed" and done["err"] is not None
    assert request.getcall("body_closed").args["read_to_end"] is False
    conn = request.connection
    assert conn is not None
    if http2:  # one stream reset: the connection was fine
        assert conn.close_reason == "client_closed"
    else:  # the body broke off: a truncated message
        assert conn.close_reason == "protocol_error"
        assert conn.close_error is not None


@pytest.mark.parametrize("mode", H1)
def test_a_request_that_never_got_a_response_failed(
    mode: str, httptrace_raw_http_server: RawServer, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_http_server  # plain TCP: a reset is seen as one
    raw.script([ReadHead(), Reset()], [ReadHead(), Close()])

    async def scenario(client: Client) -> None:
        for _ in range(2):
            with pytest.raises(httpx.TransportError):
                await client.get(raw.url("/"))

    run(mode, raw, scenario)
    reset, closed = httptrace_recorder.requests
    for request in (reset, closed):
        assert request.outcome == "failed"
        assert request.getcall("request_done").args["err"] is not None
        # No response was handed over: no body to close.
        assert not request.getcalls("body_closed")
    assert reset.connection is not None and closed.connection is not None
    assert reset.connection.close_reason == "protocol_error"  # a TCP reset
    assert isinstance(reset.connection.close_error, httpcore.ReadError)
    assert closed.connection.close_reason == "server"  # closed, nothing sent
    assert isinstance(closed.connection.close_error, httpcore.RemoteProtocolError)
    verdict = reuse_verdict(closed, httptrace_recorder)
    assert verdict.cause == "protocol_error"
    assert "was closed after a protocol error: ReadError" in verdict.reason


@pytest.mark.httptrace(leaks="off")
@pytest.mark.parametrize("mode", H1)
def test_a_leaked_response_has_no_end(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(client: Client) -> None:
        await client.open(httptrace_server.url("/bytes/10"))  # never closed

    run(mode, httptrace_server, scenario)
    [request] = httptrace_recorder.requests
    assert request.outcome is None and request.done_at is None
    assert request.connection is not None
    # Its client was closed with the response open.
    assert request.connection.close_reason == "client_closed"
    assert [e.hook for e in request.ends] == ["conn_closed"]


# -- why a connection closed -------------------------------------------------------


@pytest.mark.parametrize("mode", H1)
def test_connection_close_from_the_server(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(client: Client) -> None:
        assert (await client.get(httptrace_server.url("/close"))).status_code == 200
        assert (await client.get(httptrace_server.url("/"))).status_code == 200

    run(mode, httptrace_server, scenario)
    closing, after = httptrace_recorder.requests
    assert closing.outcome == "complete"
    conn = closing.connection
    assert conn is not None and conn.close_reason == "server"
    assert conn.close_error is None
    assert after.connection is not conn
    verdict = reuse_verdict(after, httptrace_recorder)
    assert verdict.cause == "server"
    assert (
        f"connection c{conn.id} of the earlier request #{closing.id} was closed by "
        "the server (Connection: close) at "
    ) in verdict.reason
    with pytest.raises(AssertionError, match=r"closed by the server \(Connection: "):
        assert_reused(after)
    assert_hook_sequence(
        closing,
        [..., hook("conn_closed", reason="server"), "body_closed", "request_done"],
    )
    # On the recorder (both requests, interleaved in time order) too.
    assert_hook_sequence(
        httptrace_recorder,
        [
            ...,
            hook("conn_closed", reason="server"),
            ...,
            "get_conn",
            ...,
            hook("request_done", outcome="complete"),
            "put_idle_conn",  # released as the response closed, after it ended
            hook("conn_closed", reason="client_closed"),
        ],
    )


@pytest.mark.parametrize("mode", H1)
def test_goaway_from_the_server(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(client: Client) -> None:
        assert (await client.get(httptrace_server.url("/close"))).status_code == 200
        # httpcore reads the GOAWAY that followed only now, on this request's
        # stream, and sends it again on a new connection.
        assert (await client.get(httptrace_server.url("/"))).status_code == 200

    run(mode, httptrace_server, scenario, http2=True)
    closing, resent = httptrace_recorder.requests
    assert closing.outcome == "complete"
    conn = closing.connection
    assert conn is not None and conn.protocol == "HTTP/2"
    assert conn.close_reason == "server" and conn.close_error is None
    assert conn.closed_at is not None
    # The request httpcore sent again: as Go does on its transport's retries, its
    # hooks ran again from get_conn, on the new connection, and it ended well (no
    # ConnectionNotAvailable error, no leak).
    assert resent.error is None and resent.status == 200
    assert resent.outcome == "complete" and not resent.leaked
    assert resent.connection is not None and resent.connection is not conn
    assert resent.connection.protocol == "HTTP/2"
    assert resent.hooks.count("get_conn") == 2 and resent.hooks.count("got_conn") == 2
    assert resent.got_conn is not None and not resent.got_conn.reused
    assert resent in resent.connection.requests
    assert_no_leaks(httptrace_recorder)


@pytest.mark.parametrize("mode", H1)
def test_a_connection_the_server_closed_while_idle(
    mode: str, httptrace_raw_server: RawServer, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    ok = Send.response(200, "hello")
    raw.script([ReadHead(), ok, Sleep(0.05), Close()], [ReadHead(), ok])

    async def scenario(client: Client) -> None:
        assert (await client.get(raw.url("/"))).status_code == 200
        raw.wait(1)  # connection 0 ran its script: closed by the server
        await asyncio.sleep(0.05)
        assert (await client.get(raw.url("/"))).status_code == 200

    run(mode, raw, scenario)
    first, second = httptrace_recorder.requests
    assert first.outcome == second.outcome == "complete"
    assert first.connection is not None
    assert first.connection.close_reason == "server"
    verdict = reuse_verdict(second, httptrace_recorder)
    assert verdict.cause == "server"
    assert "was closed by the server" in verdict.reason


@pytest.mark.parametrize("mode", H1)
def test_a_malformed_response_is_a_protocol_error(
    mode: str, httptrace_raw_server: RawServer, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send(b"HTTP/1.1 2x0 Nope\r\n\r\n"), Sleep(0.2), Close()])

    async def scenario(client: Client) -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(raw.url("/"))

    run(mode, raw, scenario)
    [request] = httptrace_recorder.requests
    assert request.outcome == "failed"
    assert request.connection is not None
    assert request.connection.close_reason == "protocol_error"
    [closed] = request.getcalls("conn_closed")
    assert closed.args["reason"] == "protocol_error"
    assert closed.args["err"] is not None


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_a_connection_idle_past_the_keepalive_expiry(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    url = httptrace_server.url("/")

    async def scenario(client: Client) -> None:
        assert (await client.get(url)).status_code == 200
        time.sleep(0.1)  # past the 20 ms expiry
        assert (await client.get(url)).status_code == 200

    limits = httpx.Limits(keepalive_expiry=0.02)
    run(mode, httptrace_server, scenario, http2=http2, limits=limits)
    first, second = httptrace_recorder.requests
    assert first.connection is not None and second.connection is not first.connection
    assert first.connection.close_reason == "idle_expired"
    verdict = reuse_verdict(second, httptrace_recorder)
    assert verdict.cause == "idle_expired"
    assert "expired after sitting idle" in verdict.reason
    with pytest.raises(AssertionError, match="expired after sitting idle"):
        assert_reused(second)
    assert_new_connection(second)


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_a_connection_the_pool_would_not_keep(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    url = httptrace_server.url("/")

    async def scenario(client: Client) -> None:
        assert (await client.get(url)).status_code == 200
        assert (await client.get(url)).status_code == 200

    limits = httpx.Limits(max_keepalive_connections=0)
    run(mode, httptrace_server, scenario, http2=http2, limits=limits)
    first, second = httptrace_recorder.requests
    assert first.connection is not None and second.connection is not first.connection
    assert first.connection.close_reason == "pool_full"
    verdict = reuse_verdict(second, httptrace_recorder)
    assert verdict.cause == "pool_full"
    assert "discarded by the pool: too many idle connections" in verdict.reason


def test_the_end_hooks_fire_live_on_a_client_trace(httptrace_server: Any) -> None:
    heard: list[tuple[str, object]] = []
    trace = ClientTrace(
        body_closed=lambda info: heard.append(("body_closed", info.read_to_end)),
        request_done=lambda info: heard.append(("request_done", info.outcome)),
        conn_closed=lambda info: heard.append(("conn_closed", info.reason)),
    )
    with with_client_trace(trace), httptrace_server.client() as client:
        client.get(httptrace_server.url("/close"))
    assert heard == [
        ("conn_closed", "server"),  # httpcore closes it as the response closes
        ("body_closed", True),
        ("request_done", "complete"),
    ]


def test_a_reason_is_asked_of_a_request_that_reused(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with httptrace_server.client() as client:
        client.get(httptrace_server.url("/"))
        client.get(httptrace_server.url("/"))
    first, second = httptrace_recorder.requests
    verdict = reuse_verdict(second, httptrace_recorder)
    assert verdict.reused
    with pytest.raises(ValueError, match=r"#2 reused connection c\d+") as info:
        verdict.cause  # noqa: B018
    assert "got a new connection: #1" in str(info.value)
    assert reuse_verdict(first, httptrace_recorder).cause == "first"


# -- the views: patterns, timelines, waterfall, report, normalized form ---------------


def _close_then_stream(server: Any) -> list[RequestRecord]:
    """A `Connection: close` response, then a response closed before its end."""
    with Recorder.start() as recorder, server.client() as client:
        client.get(server.url("/close"))
        with client.stream("GET", server.url("/stream/20?gap=0.05")) as response:
            next(response.iter_raw())
    return recorder.all_requests


def test_patterns_name_the_end_hooks_on_a_recorder_and_a_list(
    httptrace_server: Any,
) -> None:
    closing, early = _close_then_stream(httptrace_server)
    both = [closing, early]
    for source in (both, [*closing.events, *early.events]):
        assert_hook_sequence(
            source,
            [
                ...,
                hook("conn_closed", reason="server"),
                "body_closed",
                hook("request_done", outcome="complete"),
                ...,
                hook("request_done", outcome="closed_early"),
                ...,
            ],
        )
    # Not named: the end hooks are not compared (patterns written before them hold).
    assert_hook_sequence(closing, [..., "got_first_response_byte"])
    with pytest.raises(AssertionError) as info:
        assert_hook_sequence(early, [..., hook("request_done", outcome="complete")])
    message = str(info.value)
    assert "request_done outcome='closed_early'" in message
    assert "hook('request_done', outcome='complete') never ran" in message
    assert "conn_closed reason='client'" in message
    # The timeline shows the end hooks compared, and the legend how each ended.
    assert "ended: closed early at " in message
    with pytest.raises(ValueError, match="Did you mean 'request_done'"):
        hook("request_dne")


def test_the_timeline_says_how_each_request_ended(httptrace_server: Any) -> None:
    from pytest_httptrace import render_timeline

    closing, early = _close_then_stream(httptrace_server)
    text = render_timeline([closing, early])
    [line1] = [line for line in text.splitlines() if "/close" in line]
    [line2] = [line for line in text.splitlines() if "/stream/" in line]
    assert ", closed at " in line1  # complete: as before
    assert f"connection c{closing.connection.id} closed by the server at " in line1  # type: ignore[union-attr]
    assert "ended: closed early at " in line2
    assert "connection c" in line2 and "closed by the client at " in line2


def test_waterfall_report_and_normalized_form_say_it_too(
    tmp_path: Any, httptrace_server: Any
) -> None:
    from pytest_httptrace.report import write_report
    from pytest_httptrace.waterfall import render_waterfall, request_data

    closing, early = _close_then_stream(httptrace_server)
    data = [request_data(r) for r in (closing, early)]
    assert data[0]["outcome"] == "complete"
    assert data[0]["connection"] is not None
    assert data[0]["connection"]["close_reason"] == "server"
    assert data[1]["outcome"] == "closed_early"
    text = render_waterfall(data)
    assert "(new, closed by the server)]" in text
    assert "(new, closed by the client), ended: closed early]" in text
    _, html_path = write_report(tmp_path / "run", [("test_x.py::test_x", [closing])])
    page = html_path.read_text()
    assert "(new, closed by the server)" in page and "ended: complete" in page
    normalized = [r.normalized() for r in (closing, early)]
    assert [(n["outcome"], n["conn_closed"]) for n in normalized] == [
        ("complete", "server"),
        ("closed_early", "client"),
    ]


@pytest.mark.parametrize("mode", H1)
def test_a_request_that_asked_to_close_and_one_that_timed_out(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(client: Client) -> None:
        request = client.c.build_request(
            "GET", httptrace_server.url("/"), headers={"Connection": "close"}
        )
        if client.is_async:
            assert (await client.c.send(request)).status_code == 200
        else:
            assert client.c.send(request).status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await client.get(httptrace_server.url("/delay/2"))

    run(mode, httptrace_server, scenario, timeout=httpx.Timeout(5.0, read=0.1))
    asked, timed_out = httptrace_recorder.requests
    assert asked.outcome == "complete"
    assert asked.connection is not None
    assert asked.connection.close_reason == "client"  # it asked, the client closed
    assert timed_out.outcome == "failed"
    assert timed_out.connection is not None
    assert timed_out.connection.close_reason == "client"  # the client gave up
    assert isinstance(timed_out.connection.close_error, httpcore.ReadTimeout)
