"""Every hook from real httpx traffic, against the sequences Go's net/http produces.

Each scenario runs sync and async, over HTTP/1.1 and HTTP/2, against the local TLS
server (real sockets, real handshakes).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import httpx
import pytest

from pytest_httptrace import (
    ClientTrace,
    GotConnInfo,
    TLSConnectionState,
    with_client_trace,
)
from pytest_httptrace.recorder import Recorder, RequestRecord

#: Every test runs on httpx and on httpx2 (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("httpx_lib")

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

MODES = [
    pytest.param("sync", False, id="sync-h1"),
    pytest.param("async", False, id="async-h1"),
    pytest.param("sync", True, id="sync-h2"),
    pytest.param("async", True, id="async-h2"),
]


def hooks(request: RequestRecord) -> list[str]:
    return [h for h in request.hooks if h != "wrote_header_field"]


def get_twice(mode: str, server: Any, http2: bool, path: str = "/") -> None:
    url = server.url(path)
    if mode == "sync":
        with server.client(http2=http2) as client:
            client.get(url).raise_for_status()
            client.get(url).raise_for_status()
        return

    async def main() -> None:
        async with server.async_client(http2=http2) as client:
            (await client.get(url)).raise_for_status()
            (await client.get(url)).raise_for_status()

    asyncio.run(main())


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_cold_then_reused(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    get_twice(mode, httptrace_server, http2)
    first, second = httptrace_recorder.requests
    put = [] if http2 else ["put_idle_conn"]
    assert hooks(first) == COLD + put
    assert hooks(second) == WARM + put

    cold, warm = first.got_conn, second.got_conn
    assert cold is not None and warm is not None
    assert (cold.reused, cold.was_idle, cold.idle_time) == (False, False, 0.0)
    assert warm.reused and warm.was_idle and warm.idle_time > 0
    assert warm.conn is cold.conn

    get_conn = first.getcall("get_conn")
    assert get_conn.args == {"host_port": f"localhost:{httptrace_server.port}"}
    assert first.getcall("dns_start").args == {"host": "localhost"}
    dns_done = first.getcall("dns_done").args
    assert dns_done["err"] is None and "127.0.0.1" in dns_done["addrs"]
    connect_done = first.getcall("connect_done").args
    assert connect_done["network"] == "tcp" and connect_done["err"] is None
    assert connect_done["addr"].endswith(f":{httptrace_server.port}")

    state, err = first.getcall("tls_handshake_done").raw
    assert err is None and isinstance(state, TLSConnectionState)
    assert state.negotiated_protocol == ("h2" if http2 else "http/1.1")
    assert state.version in ("TLSv1.2", "TLSv1.3")
    assert state.server_name == "localhost" and state.peer_certificate
    assert first.getcall("wrote_request").args == {"err": None}
    if not http2:
        assert first.getcall("put_idle_conn").args == {"err": None}
        # A fully read, non-streamed body: put back before the call returned.
        assert not first.getcall("put_idle_conn").after_return
    assert first.connection is second.connection
    assert first.connection is not None
    assert first.connection.protocol == ("HTTP/2" if http2 else "HTTP/1.1")
    assert first.status == second.status == 200


@pytest.mark.parametrize(("mode", "http2"), MODES)
def test_header_fields_in_wire_order(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    url = httptrace_server.url("/")
    headers = {"X-First": "1", "X-Second": "2"}
    if mode == "sync":
        with httptrace_server.client(http2=http2) as client:
            client.get(url, headers=headers)
    else:

        async def main() -> None:
            async with httptrace_server.async_client(http2=http2) as client:
                await client.get(url, headers=headers)

        asyncio.run(main())
    (request,) = httptrace_recorder.requests
    fields = [
        (e.args["key"], e.args["values"])
        for e in request.events[:-1]
        if e.hook == "wrote_header_field"
    ]
    keys = [k.lower() for k, _ in fields]
    if http2:
        assert keys[:4] == [":method", ":authority", ":scheme", ":path"]
        assert "host" not in keys
    else:
        assert keys[0] == "host"
    assert keys.index("x-first") < keys.index("x-second")
    assert ("x-second" if http2 else "X-Second", ["2"]) in fields
    # All fields come after got_conn and before wrote_headers.
    names = request.hooks
    assert names.index("got_conn") < names.index("wrote_header_field")
    last_field = len(names) - 1 - names[::-1].index("wrote_header_field")
    assert last_field < names.index("wrote_headers")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_http2_concurrent_requests_share_a_warm_connection(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    # Long enough that the second thread's request starts while the first one is
    # in flight even on a loaded machine (0.2 s was not, once, under load 8).
    url = httptrace_server.url("/delay/0.5")
    if mode == "sync":
        with httptrace_server.client(http2=True) as client:
            client.get(httptrace_server.url("/"))
            with __import__("concurrent.futures").futures.ThreadPoolExecutor(2) as ex:
                list(ex.map(client.get, [url, url]))
    else:

        async def main() -> None:
            async with httptrace_server.async_client(http2=True) as client:
                await client.get(httptrace_server.url("/"))
                await asyncio.gather(client.get(url), client.get(url))

        asyncio.run(main())
    warmup, a, b = httptrace_recorder.requests
    infos = [r.got_conn for r in (a, b)]
    assert all(i is not None and i.reused for i in infos)
    assert sorted(i.was_idle for i in infos if i is not None) == [False, True]
    assert a.connection is b.connection is warmup.connection
    assert "put_idle_conn" not in a.hooks + b.hooks
    assert a.status == b.status == 200


@pytest.mark.parametrize(("mode", "http2"), [m for m in MODES if not m.values[1]])
def test_open_stream_forces_new_connection_and_late_put_idle(
    mode: str, http2: bool, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    stream_url = httptrace_server.url("/stream/3")
    url = httptrace_server.url("/")
    if mode == "sync":
        with (
            httptrace_server.client() as client,
            client.stream("GET", stream_url) as response,
        ):
            client.get(url)
            response.read()
    else:

        async def main() -> None:
            async with (
                httptrace_server.async_client() as client,
                client.stream("GET", stream_url) as response,
            ):
                await client.get(url)
                await response.aread()

        asyncio.run(main())
    streamed, second = httptrace_recorder.requests
    assert hooks(second) == [*COLD, "put_idle_conn"]
    assert second.connection is not streamed.connection
    put = streamed.getcall("put_idle_conn")
    assert put.after_return
    assert put.time > second.getcall("put_idle_conn").time
    assert streamed.closed_at is not None and streamed.returned_at is not None
    assert streamed.closed_at > streamed.returned_at


def test_connection_close_is_not_put_idle(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with httptrace_server.client() as client:
        client.get(httptrace_server.url("/close"))
        client.get(httptrace_server.url("/"))
    closed, after = httptrace_recorder.requests
    assert "put_idle_conn" not in closed.hooks
    assert hooks(after) == [*COLD, "put_idle_conn"]  # a new connection was dialed
    assert closed.connection is not None and closed.connection.closed_at is not None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_refused(mode: str, httptrace_recorder: Recorder) -> None:
    url = f"https://localhost:{_closed_port()}/"
    with pytest.raises(httpx.ConnectError):
        if mode == "sync":
            with httpx.Client(trust_env=False) as client:
                client.get(url)
        else:

            async def main() -> None:
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.get(url)

            asyncio.run(main())
    (request,) = httptrace_recorder.requests
    assert request.hooks[:5] == [
        "get_conn",
        "dns_start",
        "dns_done",
        "connect_start",
        "connect_done",
    ]
    assert "got_conn" not in request.hooks
    assert all(e.args["err"] is not None for e in request.getcalls("connect_done"))
    assert isinstance(request.error, httpx.ConnectError)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_untrusted_certificate(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    import ssl

    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts no CA at all
    url = httptrace_server.url("/")
    with pytest.raises(httpx.ConnectError):
        if mode == "sync":
            with httpx.Client(verify=untrusting, trust_env=False) as client:
                client.get(url)
        else:

            async def main() -> None:
                async with httpx.AsyncClient(
                    verify=untrusting, trust_env=False
                ) as client:
                    await client.get(url)

            asyncio.run(main())
    (request,) = httptrace_recorder.requests
    assert request.hooks == COLD[:7]
    state, err = request.getcall("tls_handshake_done").raw
    assert state == TLSConnectionState() and err is not None
    assert "CERTIFICATE_VERIFY_FAILED" in str(err)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_name_that_does_not_resolve(mode: str, httptrace_recorder: Recorder) -> None:
    url = "https://does-not-exist.invalid/"
    with pytest.raises(httpx.ConnectError):
        if mode == "sync":
            with httpx.Client(trust_env=False) as client:
                client.get(url)
        else:

            async def main() -> None:
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.get(url)

            asyncio.run(main())
    (request,) = httptrace_recorder.requests
    assert request.hooks == ["get_conn", "dns_start", "dns_done"]
    done = request.getcall("dns_done").args
    assert done["addrs"] == [] and done["err"] is not None


def test_ip_literal_skips_dns(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with httptrace_server.client() as client:
        client.get(f"https://127.0.0.1:{httptrace_server.port}/")
    (request,) = httptrace_recorder.requests
    assert hooks(request)[:3] == ["get_conn", "connect_start", "connect_done"]
    assert request.getcall("connect_start").args == {
        "network": "tcp",
        "addr": f"127.0.0.1:{httptrace_server.port}",
    }


def test_with_client_trace_without_recorder(httptrace_server: Any) -> None:
    seen: list[GotConnInfo] = []
    trace = ClientTrace(got_conn=seen.append)
    with httptrace_server.client() as client:
        client.get(httptrace_server.url("/"))  # before the trace: not traced
        with with_client_trace(trace):
            client.get(httptrace_server.url("/"))
        client.get(httptrace_server.url("/"))  # after: not traced
    assert len(seen) == 1 and seen[0].reused


def test_extension_door_is_honoured_while_installed(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    seen: list[str] = []
    trace = ClientTrace(wrote_headers=lambda: seen.append("wrote_headers"))
    with httptrace_server.client() as client:
        client.get(httptrace_server.url("/"), extensions={"client_trace": trace})
        client.get(httptrace_server.url("/"))
    assert seen == ["wrote_headers"]
    assert len(httptrace_recorder.requests) == 2


def test_recorder_trace_attached_again_records_once(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with with_client_trace(httptrace_recorder.trace), httptrace_server.client() as c:
        c.get(httptrace_server.url("/"))
    (request,) = httptrace_recorder.requests
    assert hooks(request).count("got_conn") == 1


def test_thread_without_copied_context_is_recorded(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    def work() -> None:
        with httptrace_server.client() as client:
            client.get(httptrace_server.url("/"))

    thread = threading.Thread(target=work, name="worker-1")
    thread.start()
    thread.join()
    (request,) = httptrace_recorder.requests
    assert {e.thread for e in request.events} == {"worker-1"}


def test_abandoned_async_stream_events_stay_with_their_request(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    async def main() -> None:
        async with httptrace_server.async_client() as client:
            response = await client.send(
                client.build_request("GET", httptrace_server.url("/stream/2")),
                stream=True,
            )
            await client.get(httptrace_server.url("/"))
            await response.aclose()
            await client.get(httptrace_server.url("/"))

    asyncio.run(main())
    streamed, second, third = httptrace_recorder.requests
    assert streamed.closed_at is not None
    for request in (second, third):
        assert request.hooks.count("got_conn") == 1
        assert all(e.request is request for e in request.events)
    assert "put_idle_conn" not in streamed.hooks  # closed before its end


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("hook_name", ["got_conn", "wrote_headers", "put_idle_conn"])
def test_raising_hook_is_reraised_and_pool_stays_healthy(
    mode: str, hook_name: str, httptrace_server: Any
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError(f"boom in {hook_name}")

    trace = ClientTrace(**{hook_name: boom})  # type: ignore[arg-type]
    url = httptrace_server.url("/")
    if mode == "sync":
        with httptrace_server.client() as client:
            with with_client_trace(trace), pytest.raises(RuntimeError) as info:
                client.get(url)
            assert client.get(url).status_code == 200
            pool = client._transport._pool  # type: ignore[attr-defined]
            assert all(c.is_idle() for c in pool.connections)
    else:

        async def main() -> Any:
            async with httptrace_server.async_client() as client:
                with with_client_trace(trace), pytest.raises(RuntimeError) as info:
                    await client.get(url)
                assert (await client.get(url)).status_code == 200
                pool = client._transport._pool  # type: ignore[attr-defined]
                assert all(c.is_idle() for c in pool.connections)
                return info

        info = asyncio.run(main())
    assert str(info.value) == f"boom in {hook_name}"
    assert f"ClientTrace.{hook_name} hook of GET {url}" in info.value.__notes__[0]


def test_each_redirect_hop_is_its_own_request(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with httptrace_server.client(follow_redirects=True) as client:
        response = client.get(httptrace_server.url("/redirect/2"))
    assert response.status_code == 200 and len(response.history) == 2
    hops = httptrace_recorder.requests
    assert [r.status for r in hops] == [302, 302, 200]
    assert hops[-1].url == httptrace_server.url("/")
    assert [r.got_conn.reused for r in hops if r.got_conn] == [False, True, True]
    # Each hop's connection went back to the pool before the call returned.
    assert not any(e.after_return for r in hops for e in r.events)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_plain_http_has_no_tls_hooks(
    mode: str, httptrace_http_server: Any, httptrace_recorder: Recorder
) -> None:
    get_twice(mode, httptrace_http_server, http2=False)
    first, second = httptrace_recorder.requests
    assert hooks(first) == [h for h in COLD if not h.startswith("tls_")] + [
        "put_idle_conn"
    ]
    assert hooks(second) == [*WARM, "put_idle_conn"]


def test_through_a_proxy_only_the_first_hop_is_observed(
    httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    from pytest_httptrace.raw_server import ReadHead, Send

    proxy = httptrace_raw_http_server
    proxy.script([ReadHead(), Send.response(200, "via proxy")])
    proxy_url = proxy.url("/").rstrip("/")
    with httpx.Client(proxy=proxy_url, trust_env=False) as client:
        response = client.get("http://target.invalid/page")
    assert response.text == "via proxy"
    assert proxy.received[0].startswith(b"GET http://target.invalid/page HTTP/1.1")
    (request,) = httptrace_recorder.requests
    # Go reports the first hop: the proxy. Nothing is invented past what we observe.
    assert request.getcall("get_conn").args == {"host_port": f"localhost:{proxy.port}"}
    assert request.hooks == [  # nothing past the first hop: no invented events
        "get_conn",
        "dns_start",
        "dns_done",
        "connect_start",
        "connect_done",
    ]
    assert request.status == 200


def test_abandoned_body_iteration_is_not_an_error(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    def first_chunk(client: httpx.Client) -> bytes:
        with client.stream("GET", httptrace_server.url("/stream/5")) as response:
            for chunk in response.iter_raw():
                return chunk  # abandons the body iteration (GeneratorExit inside)
        return b""

    with httptrace_server.client() as client:
        assert first_chunk(client)
    (request,) = httptrace_recorder.requests
    assert request.error is None and request.status == 200
    assert request.closed_at is not None


def test_async_dialing_races_addresses_like_anyio(
    httptrace_server: Any, httptrace_recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first address that never answers must not hold a traced async request for
    the whole connect timeout: as untraced (anyio's happy eyeballs), the next address
    is tried after 250 ms and the first to connect wins."""
    import time

    import anyio

    port = httptrace_server.port
    # A black hole on loopback: a listener whose accept queue is full drops SYNs.
    hole = socket.socket()
    fillers: list[socket.socket] = []
    try:
        hole.bind(("127.0.0.2", port))
        hole.listen(0)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            filler.connect_ex(("127.0.0.2", port))
        time.sleep(0.05)
        real = anyio.getaddrinfo

        async def two_addresses(host: str, *args: Any, **kw: Any) -> Any:
            infos = await real("127.0.0.1", *args, **kw)
            hole_info = (infos[0][0], infos[0][1], infos[0][2], "", ("127.0.0.2", port))
            return [hole_info, *infos]

        monkeypatch.setattr(anyio, "getaddrinfo", two_addresses)

        async def main() -> float:
            async with httptrace_server.async_client(timeout=5) as client:
                start = time.monotonic()
                (await client.get(httptrace_server.url("/"))).raise_for_status()
                return time.monotonic() - start

        elapsed = asyncio.run(main())
    finally:
        for s in (hole, *fillers):
            s.close()
    assert elapsed < 2.0  # not the 5 s connect timeout of sequential dialing
    (request,) = httptrace_recorder.requests
    starts = [e.args["addr"] for e in request.getcalls("connect_start")]
    assert starts == [f"127.0.0.2:{port}", f"127.0.0.1:{port}"]
    done = {e.args["addr"]: e.args["err"] for e in request.getcalls("connect_done")}
    assert done[f"127.0.0.1:{port}"] is None
    assert isinstance(done[f"127.0.0.2:{port}"], ConnectionAbortedError)
    assert request.hooks.index("connect_done") > request.hooks.index("connect_start")
