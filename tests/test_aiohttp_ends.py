"""aiohttp's ends (our hooks, beyond Go's): ``body_closed`` and ``request_done`` for
every attempt (read to its end, closed early, failed), ``conn_closed`` with the
reason aiohttp lets us tell, recorded and fired live on a user's trace."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp_driver import Result, fetch, run

from pytest_httptrace import ClientTrace, with_client_trace
from pytest_httptrace.aiohttp_trace import AiohttpRequestAbortedByHook
from pytest_httptrace.raw_server import (
    Close,
    Drain,
    Handshake,
    ReadHead,
    Reset,
    Send,
    Sleep,
)
from pytest_httptrace.recorder import ConnectionRecord, Recorder, RequestRecord

OK = Send.response(200, "fine")


def _ends(record: RequestRecord) -> list[tuple[str, dict[str, Any]]]:
    return [(e.hook, dict(e.args)) for e in record.ends]


def _conn(record: RequestRecord) -> ConnectionRecord:
    assert record.connection is not None
    return record.connection


async def _until_closed(record: RequestRecord, seconds: float = 5.0) -> None:
    """Let the loop run until the record's connection is closed (bounded)."""
    deadline = time.monotonic() + seconds
    while _conn(record).close_reason is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


# -- request_done: complete, closed early, failed ------------------------------------


def test_read_to_its_end_is_complete(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    assert run(httptrace_server, lambda s: fetch(s, "/")) == Result(200, b"hello")
    (record,) = httptrace_recorder.requests
    assert record.outcome == "complete"
    assert record.done_at is not None and record.closed_at is not None
    assert [e.hook for e in record.ends] == [
        "body_closed",
        "request_done",
        "conn_closed",  # the session closed with it in the pool
    ]
    assert record.getcall("body_closed").args == {"read_to_end": True, "err": None}
    assert record.getcall("request_done").args == {"outcome": "complete", "err": None}
    assert _conn(record).close_reason == "client_closed"
    assert record.hooks[-1] == "put_idle_conn"  # Go's hooks are as they were


async def _open_stream(session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
    response = await session.get("/stream/3?gap=0.2")
    await response.content.readany()  # the first chunk; the rest comes later
    return response


@pytest.mark.parametrize("how", ["release", "close", "async with"])
def test_closed_before_its_end(
    how: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> Any:
        if how == "async with":
            async with session.get("/stream/3?gap=0.2") as response:
                await response.content.readany()
        else:
            response = await _open_stream(session)
            getattr(response, how)()
        return await fetch(session, "/")

    assert run(httptrace_server, scenario) == Result(200, b"hello")
    early, after = httptrace_recorder.requests
    assert early.outcome == "closed_early"
    assert early.getcall("body_closed").args == {"read_to_end": False, "err": None}
    # aiohttp cannot keep a connection whose body was not read to its end.
    assert _conn(early).close_reason == "client"
    assert _conn(early).close_error is None
    assert [e.hook for e in early.ends][-1] == "conn_closed"
    assert after.outcome == "complete" and _conn(after) is not _conn(early)


def test_your_own_exception_in_async_with_is_closed_early(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        with pytest.raises(KeyError):
            async with session.get("/stream/3?gap=0.2") as response:
                await response.content.readany()
                raise KeyError("not aiohttp's business")

    run(httptrace_server, scenario)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "closed_early"
    assert record.getcall("request_done").args["err"] is None


def test_a_small_body_arrived_whole_is_complete_even_unread(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """aiohttp releases the connection as soon as the whole body has arrived, read
    by your code or not: the request is complete then (the pool has it back)."""

    async def scenario(session: aiohttp.ClientSession) -> None:
        response = await session.get("/close")
        while not response.closed:  # until aiohttp has the whole body (unread)
            await asyncio.sleep(0.01)
        response.release()

    run(httptrace_server, scenario)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "complete"
    assert _conn(record).close_reason == "server"


def test_head_read_timeout_fails(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    failed = run(httptrace_server, lambda s: fetch(s, "/delay/1", timeout=timeout))
    assert isinstance(failed, aiohttp.SocketTimeoutError)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed" and record.error is failed
    assert record.getcall("request_done").args == {"outcome": "failed", "err": failed}
    assert record.getcalls("body_closed") == []  # no response: no body to close
    # aiohttp gave up on the connection: closed by the client, with the timeout.
    assert _conn(record).close_reason == "client"
    assert isinstance(_conn(record).close_error, aiohttp.SocketTimeoutError)


@pytest.mark.parametrize("timeout", ["sock_read", "total"])
def test_body_read_timeout_fails(
    timeout: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> BaseException | None:
        # The head comes at once, the chunks 2 s apart: either limit expires in
        # the body, with room for a slow handshake on a loaded machine (total).
        limit = aiohttp.ClientTimeout(
            **{timeout: 0.5 if timeout == "sock_read" else 1.5}
        )
        try:
            async with session.get("/stream/3?gap=2", timeout=limit) as response:
                await response.read()
        except (asyncio.TimeoutError, TimeoutError) as exc:
            return exc
        return None  # pragma: no cover - the assertion below says it

    raised = run(httptrace_server, scenario)
    assert isinstance(raised, (asyncio.TimeoutError, TimeoutError))
    (record,) = httptrace_recorder.requests
    assert record.status == 200 and record.outcome == "failed"
    body = record.getcall("body_closed").args
    # The call returned; the read raised: the record's error is that one (as httpx
    # records a body that broke off).
    assert record.error is body["err"]
    assert body["read_to_end"] is False
    assert isinstance(body["err"], (asyncio.TimeoutError, TimeoutError))
    assert record.getcall("request_done").args["err"] is body["err"]
    assert _conn(record).close_reason == "client"


def test_cancelled_mid_body_fails(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        started = asyncio.Event()

        async def read_slowly() -> None:
            async with session.get("/stream/5?gap=0.5") as response:
                await response.content.readany()
                started.set()
                await response.read()

        task = asyncio.create_task(read_slowly())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(httptrace_server, scenario)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed"
    assert isinstance(
        record.getcall("request_done").args["err"], asyncio.CancelledError
    )
    assert _conn(record).close_reason == "client"


@pytest.mark.parametrize("path", ["/", "/stream/3?gap=0.2"])
def test_a_hook_error_fails_the_request(
    path: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """Released while the call runs (a body arrived whole) or by the call, raising
    the hook's exception, closing the response: failed either way."""
    boom = RuntimeError("got_conn says no")

    def refuse(info: Any) -> None:
        raise boom

    async def scenario(session: aiohttp.ClientSession) -> None:
        with (
            with_client_trace(ClientTrace(got_conn=refuse)),
            pytest.raises(RuntimeError),
        ):
            await session.get(path)

    run(httptrace_server, scenario)
    (record,) = httptrace_recorder.requests
    assert record.status == 200  # answered on the wire, then the call raised
    assert record.outcome == "failed"
    assert record.getcall("request_done").args["err"] is boom


def test_a_got_1xx_hook_that_aborts_fails_the_request(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.interim(103, {"Link": "</a.css>"}), OK])

    def refuse(code: int, headers: Any) -> None:
        raise ValueError("no early hints here")

    async def scenario(session: aiohttp.ClientSession) -> Any:
        with with_client_trace(ClientTrace(got_1xx_response=refuse)):
            return await fetch(session, "/")

    aborted = run(raw, scenario)
    assert isinstance(aborted, AiohttpRequestAbortedByHook)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed"
    assert record.getcall("request_done").args == {"outcome": "failed", "err": aborted}
    assert record.getcalls("body_closed") == []
    assert _conn(record).close_reason == "client"  # the 200 behind it left unread


# -- failures from the scripted server, and the reasons they close with ------------


def test_reset_fails_every_attempt(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Reset()], [ReadHead(), Reset()])  # aiohttp retries once
    failed = run(raw, lambda s: fetch(s, "/"))
    assert isinstance(failed, aiohttp.ClientOSError)
    first, last = httptrace_recorder.requests
    for attempt in (first, last):
        assert attempt.outcome == "failed"
        assert attempt.getcalls("body_closed") == []
        assert _conn(attempt).close_reason == "protocol_error"
        assert isinstance(_conn(attempt).close_error, ConnectionResetError)
    assert last.getcall("request_done").args["err"] is failed  # what you caught
    first_err = first.getcall("request_done").args["err"]  # its own: aiohttp retried
    assert isinstance(first_err, aiohttp.ClientOSError) and first_err is not failed


def test_malformed_response_is_a_protocol_error(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")])
    failed = run(raw, lambda s: fetch(s, "/"))
    assert isinstance(failed, aiohttp.ClientResponseError)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed"
    assert _conn(record).close_reason == "protocol_error"
    assert isinstance(_conn(record).close_error, aiohttp.http.HttpProcessingError)


def test_truncated_body_fails_and_the_server_closed_it(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    partial = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    raw.script([ReadHead(), partial, Close()])
    failed = run(raw, lambda s: fetch(s, "/"))
    assert isinstance(failed, aiohttp.ClientPayloadError)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed"
    body = record.getcall("body_closed").args
    assert body == {"read_to_end": False, "err": failed}
    assert _conn(record).close_reason == "server"  # its end of stream mid-body


def test_truncated_body_read_from_the_stream_then_released(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    partial = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    raw.script([ReadHead(), partial, Close()])

    async def scenario(session: aiohttp.ClientSession) -> BaseException | None:
        response = await session.get("/")
        caught = None
        try:
            await response.content.read()
        except aiohttp.ClientPayloadError as exc:
            caught = exc
        response.release()  # after the error was handled
        return caught

    caught = run(raw, scenario)
    assert isinstance(caught, aiohttp.ClientPayloadError)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed"
    assert record.getcall("body_closed").args == {"read_to_end": False, "err": caught}


def test_connection_close_from_the_server(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    assert run(httptrace_server, lambda s: fetch(s, "/close")) == Result(
        200, b"closing"
    )
    (record,) = httptrace_recorder.requests
    assert record.outcome == "complete"
    assert _conn(record).close_reason == "server"
    assert _conn(record).close_error is None


def test_server_closes_an_idle_connection(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), OK, Close()])

    async def scenario(session: aiohttp.ClientSession) -> Any:
        result = await fetch(session, "/")
        await _until_closed(httptrace_recorder.requests[0])
        return result

    assert run(raw, scenario) == Result(200, b"fine")
    (record,) = httptrace_recorder.requests
    assert record.hooks[-1] == "put_idle_conn"  # it was in the pool
    assert _conn(record).close_reason == "server"


# -- the pool: keep-alive expiry, force_close, the session closed --------------------


def test_idle_expiry_by_the_keepalive_timer(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> Any:
        result = await fetch(session, "/")
        await _until_closed(httptrace_recorder.requests[0])
        return result

    connector = {"keepalive_timeout": 0.2}
    assert run(httptrace_server, scenario, connector=connector) == Result(200, b"hello")
    (record,) = httptrace_recorder.requests
    assert record.outcome == "complete"
    assert _conn(record).close_reason == "idle_expired"


def test_idle_expiry_found_when_picking_a_connection(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> Any:
        await fetch(session, "/")
        # Block the loop past the keep-alive timeout, so that aiohttp's cleanup
        # timer cannot run first: the next request finds the connection expired.
        time.sleep(0.5)
        return await fetch(session, "/")

    connector = {"keepalive_timeout": 0.3}
    assert run(httptrace_server, scenario, connector=connector) == Result(200, b"hello")
    first, second = httptrace_recorder.requests
    assert _conn(first).close_reason == "idle_expired"
    assert _conn(second) is not _conn(first)
    assert second.got_conn is not None and not second.got_conn.reused
    assert _conn(first).closed_at is not None
    assert second.done_at is not None and _conn(first).closed_at < second.done_at


def test_picking_past_an_expired_connection_leaves_the_fit_ones_alone(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """Three idle connections; two served again since, so only the oldest in the
    pool is past keepalive_timeout: aiohttp's pick closes that one, takes the next,
    and the third stays in the pool, open."""
    keepalive = 0.6

    async def scenario(session: aiohttp.ClientSession) -> Any:
        # Three connections, each back in the pool at about t0.
        await asyncio.gather(*(fetch(session, "/delay/0.05") for _ in range(3)))
        # The two oldest serve again (0.3 s): back at t1 = t0 + 0.3, at the end.
        await asyncio.gather(*(fetch(session, "/delay/0.3") for _ in range(2)))
        # Block the loop (so aiohttp's cleanup timer cannot run first) until the
        # oldest is past the timeout (t0 + 0.75) and the others are not (t1 + 0.45).
        time.sleep(0.45)
        return await fetch(session, "/")

    connector = {"keepalive_timeout": keepalive}
    assert run(httptrace_server, scenario, connector=connector) == Result(200, b"hello")
    *first, picking = httptrace_recorder.requests
    conns = {_conn(r).id: _conn(r) for r in first}
    assert len(conns) == 3
    expired = [c for c in conns.values() if c.close_reason == "idle_expired"]
    assert len(expired) == 1, [(c.id, c.close_reason) for c in conns.values()]
    assert expired[0].requests[-1] in first[:3]  # idle since the first round
    assert picking.got_conn is not None and picking.got_conn.reused
    taken = _conn(picking)
    assert taken is not expired[0]
    # The one left in the pool was closed by the session's close, not by the pick.
    (left,) = [c for c in conns.values() if c is not taken and c is not expired[0]]
    assert left.close_reason == "client_closed"
    assert expired[0].closed_at is not None and left.closed_at is not None
    assert expired[0].closed_at < picking.getcall("got_conn").time < left.closed_at


def test_force_close_is_the_client(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    connector = {"force_close": True}
    assert run(httptrace_server, lambda s: fetch(s, "/"), connector=connector) == (
        Result(200, b"hello")
    )
    (record,) = httptrace_recorder.requests
    assert record.outcome == "complete"
    assert _conn(record).close_reason == "client"


def test_session_closed_mid_request(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def scenario(session: aiohttp.ClientSession) -> Any:
        task = asyncio.create_task(fetch(session, "/delay/1"))
        while not httptrace_recorder.requests or (
            "wrote_request" not in httptrace_recorder.requests[0].hooks
        ):
            await asyncio.sleep(0.01)
        await session.close()
        return await task

    failed = run(httptrace_server, scenario)
    assert isinstance(failed, aiohttp.ClientError)
    closed, *_ = httptrace_recorder.requests
    assert _conn(closed).close_reason == "client_closed"
    assert all(r.outcome == "failed" for r in httptrace_recorder.requests)


def test_a_dial_the_closed_connector_overtook(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """The connector is closed while a dial is still in its TLS handshake: aiohttp
    closes the new connection once it is made and fails the request; the connection
    was closed with its client."""
    raw = httptrace_raw_server
    raw.script([Sleep(0.4), Handshake(), Drain(0.5)])
    heard: list[str] = []
    trace = ClientTrace(conn_closed=lambda info: heard.append(info.reason))

    async def scenario(session: aiohttp.ClientSession) -> Any:
        with with_client_trace(trace):
            task = asyncio.create_task(fetch(session, "/"))
        while not httptrace_recorder.requests or (
            "tls_handshake_start" not in httptrace_recorder.requests[0].hooks
        ):
            await asyncio.sleep(0.01)
        await session.connector.close()  # type: ignore[union-attr]
        return await task

    failed = run(raw, scenario)
    assert isinstance(failed, aiohttp.ClientConnectionError)
    assert "Connector is closed" in str(failed)
    (record,) = httptrace_recorder.requests
    assert record.outcome == "failed"
    assert "tls_handshake_done" in record.hooks and "got_conn" not in record.hooks
    assert _conn(record).close_reason == "client_closed"
    assert heard == ["client_closed"]  # live, to the trace of the request that dialed


def test_redirect_hops(httptrace_server: Any, httptrace_recorder: Recorder) -> None:
    assert run(httptrace_server, lambda s: fetch(s, "/redirect/2")) == Result(
        200, b"hello"
    )
    *hops, final = httptrace_recorder.requests
    assert [h.status for h in hops] == [302, 302] and final.outcome == "complete"
    for hop, after in zip(hops, [*hops[1:], final], strict=True):
        # aiohttp never reads a redirect's body: it releases the hop, which is
        # complete if its body had already arrived whole (the connection goes on to
        # the next hop), closed early if not (aiohttp closes the connection).
        if hop.outcome == "complete":
            assert hop.getcall("body_closed").args["read_to_end"] is True
            assert _conn(after) is _conn(hop)
        else:
            assert hop.outcome == "closed_early"
            assert _conn(hop).close_reason == "client"
            assert _conn(after) is not _conn(hop)


# -- a user's ClientTrace hears them live -----------------------------------------


def test_a_trace_hears_the_ends_live(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    heard: list[tuple[str, Any]] = []
    trace = ClientTrace(
        body_closed=lambda info: heard.append(("body_closed", info)),
        request_done=lambda info: heard.append(("request_done", info)),
        conn_closed=lambda info: heard.append(("conn_closed", info)),
    )

    async def scenario(session: aiohttp.ClientSession) -> Any:
        with with_client_trace(trace):
            first = await fetch(session, "/")
            assert [name for name, _ in heard] == ["body_closed", "request_done"]
            return [first, await fetch(session, "/close")]

    assert run(httptrace_server, scenario) == [
        Result(200, b"hello"),
        Result(200, b"closing"),
    ]
    assert [name for name, _ in heard] == [
        "body_closed",
        "request_done",
        "body_closed",
        "request_done",
        "conn_closed",  # on the trace of the last request it served
    ]
    body, done = heard[2][1], heard[3][1]
    assert body.read_to_end is True and body.err is None
    assert done.outcome == "complete" and done.err is None
    closed = heard[4][1]
    first, second = httptrace_recorder.requests
    assert closed.reason == "server" and closed.err is None
    assert closed.conn is _conn(second).conn and _conn(second) is _conn(first)
    assert _ends(second)[-1] == (
        "conn_closed",
        {"conn": closed.conn, "reason": "server", "err": None},
    )
    # The first request's record does not repeat its connection's close.
    assert [e.hook for e in first.ends] == ["body_closed", "request_done"]


def test_garbage_on_an_idle_connection_is_a_protocol_error(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), OK, Sleep(0.2), Send(b"HTTP/1.1 ???\r\n\r\n")])

    async def scenario(session: aiohttp.ClientSession) -> Any:
        result = await fetch(session, "/")
        await _until_closed(httptrace_recorder.requests[0])
        return result

    assert run(raw, scenario) == Result(200, b"fine")
    (record,) = httptrace_recorder.requests
    assert record.outcome == "complete"
    assert _conn(record).close_reason == "protocol_error"
    assert _conn(record).close_error is not None
