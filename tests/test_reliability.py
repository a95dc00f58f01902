"""Nothing lost under load, cancellation and raising hooks; the pool stays healthy."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import httpx
import pytest

from pytest_httptrace import HOOK_NAMES, ClientTrace, Recorder, with_client_trace
from pytest_httptrace.recorder import RequestRecord

#: Every test runs on httpx and on httpx2 (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("httpx_lib")

WARM = [
    "get_conn",
    "got_conn",
    "wrote_headers",
    "wrote_request",
    "got_first_response_byte",
]
COLD_PREFIX = [
    "get_conn",
    "dns_start",
    "dns_done",
    "connect_start",
    "connect_done",
    "tls_handshake_start",
    "tls_handshake_done",
]


def _expected(request: RequestRecord, http2: bool) -> list[str]:
    info = request.got_conn
    assert info is not None, f"{request.url}: no got_conn in {request.hooks}"
    hooks = [] if info.reused else COLD_PREFIX[1:]
    hooks = ["get_conn", *hooks, *WARM[1:]]
    return hooks if http2 else [*hooks, "put_idle_conn"]


def _check_load(recorder: Recorder, urls: list[str], http2: bool, server: Any) -> None:
    requests = recorder.requests
    assert sorted(r.url for r in requests) == sorted(urls)  # none lost or invented
    for request in requests:
        hooks = [h for h in request.hooks if h != "wrote_header_field"]
        assert hooks == _expected(request, http2), request.url
        assert all(e.request is request for e in request.events)
        assert request.status == 200
    # Every event belongs to exactly one request, none counted twice.
    counted = Counter(id(e) for r in requests for e in r.events)
    assert len(counted) == len(recorder.events) and set(counted.values()) == {1}
    dialed = {id(r.connection) for r in requests if not r.got_conn.reused}  # type: ignore[union-attr]
    assert len(dialed) == len(recorder.connections)
    server_side = [
        c
        for c in server.log.connections
        if any(q.path.startswith("/load") for q in c.requests)
    ]
    assert len(server_side) == len(recorder.connections), (
        # What each side saw, should they ever differ (once, under load: 20 vs 21).
        [(c.client_addr, len(c.requests)) for c in server_side],
        [(c.local_addr, len(c.requests)) for c in recorder.connections],
    )


@pytest.fixture
def load_route(httptrace_server: Any) -> Any:
    httptrace_server.add_route("/load", "ok")
    return httptrace_server


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_threads_with_copied_contexts(
    http2: bool, load_route: Any, httptrace_recorder: Recorder
) -> None:
    urls = [load_route.url(f"/load?t={t}&i={i}") for t in range(50) for i in range(10)]
    extra: list[str] = []
    trace = ClientTrace(got_conn=lambda info: extra.append("got_conn"))
    limits = httpx.Limits(max_connections=20)
    # HTTP/1.1: all threads share one client (and its pool). HTTP/2: one client per
    # thread, because httpcore's *sync* HTTP/2 connection is not safe to share among
    # many threads: stream ids can reach the wire out of order and the server ends
    # the connection with PROTOCOL_ERROR, with or without this plugin
    # (encode/httpx#3324, #3072).
    shared = None if http2 else load_route.client(limits=limits)

    def worker(t: int) -> None:
        client = shared or load_route.client(http2=True)
        try:
            for i in range(10):
                client.get(urls[t * 10 + i]).raise_for_status()
        finally:
            if client is not shared:
                client.close()

    try:
        with with_client_trace(trace), ThreadPoolExecutor(50) as pool:
            contexts = [contextvars.copy_context() for _ in range(50)]
            list(pool.map(lambda t: contexts[t].run(worker, t), range(50)))
    finally:
        if shared is not None:
            shared.close()
    _check_load(httptrace_recorder, urls, http2, load_route)
    assert len(extra) == 500  # the copied context's own trace ran for every request
    if http2:
        assert len(httptrace_recorder.connections) == 50


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_asyncio_tasks(
    http2: bool, load_route: Any, httptrace_recorder: Recorder
) -> None:
    urls = [load_route.url(f"/load?task={i}") for i in range(200)]

    async def main() -> None:
        limits = httpx.Limits(max_connections=20)
        async with load_route.async_client(http2=http2, limits=limits) as client:

            async def one(url: str) -> None:
                (await client.get(url)).raise_for_status()

            await asyncio.gather(*(one(u) for u in urls))

    asyncio.run(main())
    _check_load(httptrace_recorder, urls, http2, load_route)


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_cancelled_while_waiting_for_headers(
    http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def main() -> int:
        async with httptrace_server.async_client(http2=http2) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    client.get(httptrace_server.url("/delay/5")), 0.2
                )
            return (await client.get(httptrace_server.url("/"))).status_code

    assert asyncio.run(main()) == 200
    cancelled, after = httptrace_recorder.requests
    assert "got_first_response_byte" not in cancelled.hooks
    assert isinstance(cancelled.error, asyncio.CancelledError)
    assert cancelled.closed_at is not None  # httpcore closed it; no leak
    assert after.status == 200 and all(e.request is after for e in after.events)


def test_cancelled_mid_body_late_events_stay_with_their_request(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def main() -> int:
        async with httptrace_server.async_client() as client:

            async def read_slowly() -> None:
                async with client.stream(
                    "GET", httptrace_server.url("/stream/50")
                ) as r:
                    async for _ in r.aiter_bytes():
                        await asyncio.sleep(0.05)

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(read_slowly(), 0.2)
            return (await client.get(httptrace_server.url("/"))).status_code

    assert asyncio.run(main()) == 200
    streamed, after = httptrace_recorder.requests
    assert streamed.closed_at is not None
    assert "put_idle_conn" not in streamed.hooks  # closed before its end: not kept
    assert after.hooks[0] == "get_conn" and all(
        e.request is after for e in after.events
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_read_timeout_then_next_request_succeeds(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    slow, fast = httptrace_server.url("/delay/2"), httptrace_server.url("/")
    timeout = httpx.Timeout(5.0, read=0.2)  # only the read is short: not the dial
    if mode == "sync":
        with httptrace_server.client(timeout=timeout) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.get(slow)
            status = client.get(fast).status_code
    else:

        async def main() -> int:
            async with httptrace_server.async_client(timeout=timeout) as client:
                with pytest.raises(httpx.ReadTimeout):
                    await client.get(slow)
                return (await client.get(fast)).status_code

        status = asyncio.run(main())
    assert status == 200
    timed_out, after = httptrace_recorder.requests
    assert isinstance(timed_out.error, httpx.ReadTimeout)
    assert timed_out.getcall("wrote_request").args == {"err": None}
    assert after.status == 200


def test_pool_timeout_is_recorded(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.1)
    with httptrace_server.client(limits=limits, timeout=timeout) as client:
        with client.stream("GET", httptrace_server.url("/stream/2")) as response:
            with pytest.raises(httpx.PoolTimeout):
                client.get(httptrace_server.url("/"))
            response.read()
        assert client.get(httptrace_server.url("/")).status_code == 200
    _held, starved, after = httptrace_recorder.requests
    assert starved.hooks == ["get_conn"]
    assert isinstance(starved.error, httpx.PoolTimeout)
    assert after.got_conn is not None and after.got_conn.reused


HOOKS_ON_A_COLD_GET = [
    h
    for h in HOOK_NAMES
    if h not in ("got_100_continue", "got_1xx_response", "wait_100_continue")
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("hook_name", HOOKS_ON_A_COLD_GET)
def test_raising_hook_in_every_position(
    mode: str, hook_name: str, httptrace_server: Any
) -> None:
    """Documented behaviour: the request completes on the wire, the pool stays
    healthy, and the hook's exception is raised from the call once it is done."""

    def boom(*args: object) -> None:
        raise RuntimeError(hook_name)

    trace = ClientTrace(**{hook_name: boom})  # type: ignore[arg-type]
    url = httptrace_server.url("/")
    if mode == "sync":
        with httptrace_server.client() as client:
            with with_client_trace(trace), pytest.raises(RuntimeError, match=hook_name):
                client.get(url)
            assert client.get(url).status_code == 200
            assert client.get(url).status_code == 200
            pool = client._transport._pool  # type: ignore[attr-defined]
            assert len(pool.connections) == 1 and pool.connections[0].is_idle()
    else:

        async def main() -> None:
            async with httptrace_server.async_client() as client:
                with (
                    with_client_trace(trace),
                    pytest.raises(RuntimeError, match=hook_name),
                ):
                    await client.get(url)
                assert (await client.get(url)).status_code == 200
                assert (await client.get(url)).status_code == 200
                pool = client._transport._pool  # type: ignore[attr-defined]
                assert len(pool.connections) == 1 and pool.connections[0].is_idle()

        asyncio.run(main())


def test_hook_raising_after_return_goes_to_unraisablehook(
    httptrace_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("sys.unraisablehook", seen.append)

    def boom(err: BaseException | None) -> None:
        raise RuntimeError("late")

    with (
        httptrace_server.client() as client,
        with_client_trace(ClientTrace(put_idle_conn=boom)),
    ):
        with client.stream("GET", httptrace_server.url("/stream/2")) as response:
            response.read()  # put_idle_conn runs here, after the call returned
        assert client.get(httptrace_server.url("/close")).status_code == 200
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, RuntimeError)
    assert "after the call returned" in seen[0].err_msg


def test_client_does_not_use_proxy_environment(
    httptrace_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with httptrace_server.client() as client:
        assert client.get(httptrace_server.url("/")).status_code == 200


def test_server_context_verifies_certificates(httptrace_server: Any) -> None:
    context = httptrace_server.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    default = ssl.create_default_context()
    assert default.verify_mode == ssl.CERT_REQUIRED  # global defaults untouched


def _black_hole() -> tuple[socket.socket, list[socket.socket]]:
    """A loopback listener whose accept queue is full: connects to it hang."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(hole.getsockname())
        fillers.append(filler)
    return hole, fillers


def test_cancelled_during_connect(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    hole, fillers = _black_hole()
    port = hole.getsockname()[1]

    async def main() -> int:
        async with httptrace_server.async_client() as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get(f"https://127.0.0.1:{port}/"), 0.3)
            return (await client.get(httptrace_server.url("/"))).status_code

    try:
        assert asyncio.run(main()) == 200
    finally:
        for s in (hole, *fillers):
            s.close()
    cancelled, after = httptrace_recorder.requests
    assert cancelled.hooks == ["get_conn", "connect_start", "connect_done"]
    err = cancelled.getcall("connect_done").args["err"]
    assert isinstance(err, ConnectionAbortedError) and "canceled" in str(err)
    assert isinstance(cancelled.error, asyncio.CancelledError)
    assert after.status == 200 and all(e.request is after for e in after.events)


def test_cancelled_during_tls_with_anyio_fail_after(
    httptrace_server: Any, httptrace_recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import sys

    import anyio

    # Upstream, with or without this plugin: httpcore 1.0's AnyIOStream.start_tls
    # closes the TCP stream on Exception only, so a cancellation during the
    # handshake leaks the socket. Collect that leak here, where it happens, instead
    # of letting the garbage collector report it in some later test.
    leaked: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", leaked.append)

    silent = socket.socket()  # accepts TCP (the kernel does), never answers TLS
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]

    async def main() -> int:
        async with httptrace_server.async_client() as client:
            with pytest.raises(TimeoutError), anyio.fail_after(0.3):
                await client.get(f"https://127.0.0.1:{port}/")
            return (await client.get(httptrace_server.url("/"))).status_code

    try:
        assert anyio.run(main) == 200
    finally:
        silent.close()
        gc.collect()
    assert all(isinstance(u.exc_value, ResourceWarning) for u in leaked), leaked
    cancelled, after = httptrace_recorder.requests
    assert cancelled.hooks[-2:] == ["tls_handshake_start", "tls_handshake_done"]
    state, err = cancelled.getcall("tls_handshake_done").raw
    assert not state.handshake_complete and err is not None
    assert "got_conn" not in cancelled.hooks
    assert after.status == 200
    # The records hold the handshake's error, whose traceback holds the leaked
    # socket: drop them and collect again, still here.
    del cancelled, after, state, err
    httptrace_recorder.clear()
    gc.collect()
    assert all(isinstance(u.exc_value, ResourceWarning) for u in leaked), leaked


def test_connect_timeout_is_recorded(httptrace_recorder: Recorder) -> None:
    hole, fillers = _black_hole()
    url = f"https://127.0.0.1:{hole.getsockname()[1]}/"
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, connect=0.2), trust_env=False) as c,
            pytest.raises(httpx.ConnectTimeout),
        ):
            c.get(url)
    finally:
        for s in (hole, *fillers):
            s.close()
    (request,) = httptrace_recorder.requests
    assert request.hooks == ["get_conn", "connect_start", "connect_done"]
    assert isinstance(
        request.getcall("connect_done").args["err"], httpcore.ConnectTimeout
    )
    assert isinstance(request.error, httpx.ConnectTimeout)
