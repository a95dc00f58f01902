"""aiohttp against the scripted server: 100-continue accepted and refused, early
hints, a got_1xx_response hook that aborts, hooks that raise, and faults (reset,
truncation, stale keep-alive) with a healthy pool afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp_driver import Result, fetch, run, visible

from pytest_httptrace import ClientTrace, with_client_trace
from pytest_httptrace.aiohttp_trace import AiohttpRequestAbortedByHook
from pytest_httptrace.raw_server import Close, Drain, ReadBody, ReadHead, Reset, Send
from pytest_httptrace.recorder import Recorder
from pytest_httptrace.trace import RequestAbortedByHook

OK = Send.response(200, "fine")
BODY = b"x" * 1000


def _after_got_conn(hooks: list[str]) -> list[str]:
    hooks = visible(hooks)
    return hooks[hooks.index("got_conn") + 1 :]


def test_100_continue_accepted(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.interim(100), ReadBody(), Send.response(201, "made")])
    result = run(raw, lambda s: fetch(s, "/", "POST", data=BODY, expect100=True))
    assert result == Result(201, b"made")
    (request,) = httptrace_recorder.requests
    assert _after_got_conn(request.hooks) == [
        "wrote_headers",
        "wait_100_continue",  # aiohttp really holds the body back
        "got_first_response_byte",
        "got_100_continue",
        "got_1xx_response",
        "wrote_request",
        "put_idle_conn",
    ]
    assert request.getcall("got_1xx_response").args["code"] == 100
    assert request.getcall("wrote_request").args == {"err": None}
    [conn] = raw.connections
    assert conn.received.endswith(BODY)


def test_100_continue_refused(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.response(417, "no"), Drain(0.3), Close()])
    result = run(raw, lambda s: fetch(s, "/", "POST", data=BODY, expect100=True))
    assert result == Result(417, b"no")
    (request,) = httptrace_recorder.requests
    assert _after_got_conn(request.hooks) == [
        "wrote_headers",
        "wait_100_continue",
        "got_first_response_byte",
        "wrote_request",  # the body withheld: no error, as in Go
    ]
    assert request.getcall("wrote_request").args == {"err": None}
    assert "got_100_continue" not in request.hooks
    # aiohttp closes a connection whose body it never sent: not pooled.
    assert "put_idle_conn" not in request.hooks
    [conn] = raw.connections
    assert BODY not in conn.received
    assert request.status == 417


def test_early_hints(httptrace_raw_server: Any, httptrace_recorder: Recorder) -> None:
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            Send.interim(103, {"Link": "</a.css>; rel=preload"}),
            Send.interim(103, {"Link": "</b.js>; rel=preload"}),
            Send.response(200, "done"),
        ]
    )
    assert run(raw, lambda s: fetch(s, "/")) == Result(200, b"done")
    (request,) = httptrace_recorder.requests
    assert _after_got_conn(request.hooks) == [
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "got_1xx_response",
        "got_1xx_response",
        "put_idle_conn",
    ]
    interim = request.getcalls("got_1xx_response")
    assert [e.args["code"] for e in interim] == [103, 103]
    headers = [e.args["headers"] for e in interim]
    assert all(isinstance(h, aiohttp.typedefs.CIMultiDictProxy) for h in headers)
    assert [h["link"] for h in headers] == [
        "</a.css>; rel=preload",
        "</b.js>; rel=preload",
    ]
    assert request.status == 200


def test_got_1xx_hook_raising_aborts_the_request(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [ReadHead(), Send.interim(103, {"Link": "</a.css>"}), Send.response(200)],
        [ReadHead(), OK],
    )
    refusal = ValueError("no early hints here")

    def refuse(code: int, headers: Any) -> None:
        raise refusal

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        with with_client_trace(ClientTrace(got_1xx_response=refuse)):
            aborted = await fetch(session, "/")
        return [aborted, await fetch(session, "/")]

    aborted, after = run(raw, scenario)
    assert isinstance(aborted, AiohttpRequestAbortedByHook)
    assert isinstance(aborted, RequestAbortedByHook)  # the model's base class
    assert isinstance(aborted, aiohttp.ClientError)
    assert aborted.__cause__ is refusal
    assert after == Result(200, b"fine")
    first, second = httptrace_recorder.requests
    assert first.error is aborted and "put_idle_conn" not in first.hooks
    assert first.connection is not None and first.connection.closed_at is not None
    assert second.got_conn is not None and not second.got_conn.reused


@pytest.mark.parametrize(
    "hook",
    [
        "get_conn",
        "dns_done",
        "connect_done",
        "tls_handshake_done",
        "got_conn",
        "wrote_header_field",
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        # put_idle_conn may come after the call returned: see the test after next
    ],
)
def test_a_raising_hook_completes_on_the_wire_then_raises(
    hook: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    boom = RuntimeError(f"{hook} says no")

    def raise_it(*args: Any) -> None:
        raise boom

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        with with_client_trace(ClientTrace(**{hook: raise_it})):
            try:
                await session.get("/")
            except RuntimeError as exc:
                raised: Any = exc
            else:  # pragma: no cover - the assertion below says it
                raised = None
        return [raised, await fetch(session, "/")]

    raised, after = run(httptrace_server, scenario)
    assert raised is boom
    assert any(hook in note for note in boom.__notes__)
    assert after == Result(200, b"hello")
    first, _ = httptrace_recorder.requests
    assert first.status == 200  # the server answered: the request went out
    assert first.closed_at is not None  # the response the call held was closed
    assert [r.method for r in httptrace_server.log.requests] == ["GET", "GET"]


def test_reset_after_the_head(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    # aiohttp retries an idempotent request once on a reset: script both.
    raw.script([ReadHead(), Reset()], [ReadHead(), Reset()], [ReadHead(), OK])

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return [await fetch(session, "/"), await fetch(session, "/")]

    failed, after = run(raw, scenario)
    assert isinstance(failed, aiohttp.ClientError)
    assert after == Result(200, b"fine")
    attempts = httptrace_recorder.requests
    assert len(attempts) == 3  # two attempts of the failed call, then the next
    for attempt in attempts[:2]:
        assert _after_got_conn(attempt.hooks) == ["wrote_headers", "wrote_request"]
        assert attempt.closed_at is not None
    assert attempts[1].error is failed
    assert attempts[2].got_conn is not None and not attempts[2].got_conn.reused


def test_truncated_body(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    partial = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    raw.script([ReadHead(), partial, Close()], [ReadHead(), OK])

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        return [await fetch(session, "/"), await fetch(session, "/")]

    truncated_result, after = run(raw, scenario)
    assert isinstance(truncated_result, aiohttp.ClientPayloadError)
    assert after == Result(200, b"fine")
    truncated, second = httptrace_recorder.requests
    assert "got_first_response_byte" in truncated.hooks
    assert "put_idle_conn" not in truncated.hooks  # not kept: Go calls nothing
    assert truncated.status == 200 and truncated.closed_at is not None
    assert second.got_conn is not None and not second.got_conn.reused


def test_stale_keep_alive_connection(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), OK, Close()], [ReadHead(), Send.response(200, "again")])

    async def scenario(session: aiohttp.ClientSession) -> list[Any]:
        first = await fetch(session, "/")
        await asyncio.to_thread(raw.wait, 1)
        await asyncio.sleep(0)
        return [first, await fetch(session, "/")]

    assert run(raw, scenario) == [Result(200, b"fine"), Result(200, b"again")]
    first, *attempts = httptrace_recorder.requests
    assert "put_idle_conn" in first.hooks  # it did go back to the pool
    assert first.connection is not None and first.connection.closed_at is not None
    if len(attempts) == 2:
        # The close had not reached aiohttp yet: it took the stale connection, the
        # request failed, and aiohttp retried it on a new one (a second attempt).
        stale, _ = attempts
        assert stale.got_conn is not None and stale.got_conn.reused
        assert stale.connection is first.connection
        assert "put_idle_conn" not in stale.hooks
    second = attempts[-1]
    assert second.got_conn is not None and not second.got_conn.reused
    assert "connect_start" in second.hooks and second.status == 200


def test_through_a_forwarding_proxy(
    httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    """A plain-HTTP proxy: the connection is the proxy's, and so are the hooks
    (Go's first hop); the request goes out with its absolute URL."""
    proxy = httptrace_raw_http_server
    proxy.script([ReadHead(), Send.response(200, "via proxy")])
    proxy_url = proxy.url("/").rstrip("/")

    async def scenario() -> Any:
        async with aiohttp.ClientSession() as session:
            return await fetch(session, "http://target.invalid/page", proxy=proxy_url)

    assert asyncio.run(scenario()) == Result(200, b"via proxy")
    assert proxy.received[0].startswith(b"GET http://target.invalid/page HTTP/1.1")
    (request,) = httptrace_recorder.requests
    assert request.getcall("get_conn").args == {"host_port": f"localhost:{proxy.port}"}
    assert request.getcall("dns_start").args == {"host": "localhost"}
    assert visible(request.hooks) == [
        "get_conn",
        "dns_start",
        "dns_done",
        "connect_start",
        "connect_done",
        "got_conn",
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "put_idle_conn",
    ]
    assert request.connection is not None
    assert request.connection.peer_addr is not None
    assert request.connection.peer_addr.endswith(f":{proxy.port}")


def test_a_hook_raising_after_the_call_returned_goes_to_unraisablehook(
    httptrace_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("sys.unraisablehook", seen.append)

    def boom(err: BaseException | None) -> None:
        raise RuntimeError("late")

    async def scenario(session: aiohttp.ClientSession) -> Any:
        with with_client_trace(ClientTrace(put_idle_conn=boom)):
            async with session.get("/stream/3") as response:
                body = await response.read()  # put_idle_conn here: after the call
            return [body, await fetch(session, "/close")]

    body, after = run(httptrace_server, scenario)
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    assert isinstance(after, Result) and after.status == 200
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, RuntimeError)
    assert "after the call returned" in seen[0].err_msg


@pytest.mark.parametrize(
    "fixture", ["httptrace_http_server", "httptrace_raw_http_server"]
)
def test_plain_servers_give_sessions_too(
    fixture: str, request: pytest.FixtureRequest, httptrace_recorder: Recorder
) -> None:
    server = request.getfixturevalue(fixture)
    if fixture == "httptrace_raw_http_server":
        server.script([ReadHead(), Send.response(200, "hello")])
    assert run(server, lambda s: fetch(s, "/")) == Result(200, b"hello")
    (record,) = httptrace_recorder.requests
    assert record.url == server.url("/")
    assert not any(h.startswith("tls_") for h in record.hooks)
    assert visible(record.hooks)[-2:] == ["got_first_response_byte", "put_idle_conn"]
