"""Every hook from real urllib3 and requests traffic, against the sequences Go's
net/http produces for an HTTP/1.1 client (TLS and plain, real sockets)."""

from __future__ import annotations

import contextlib
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import urllib3
from http1_driver import CLIENTS, Driver

from pytest_httptrace import ClientTrace, Recorder, find_leaks, with_client_trace
from pytest_httptrace.recorder import RequestRecord
from pytest_httptrace.urllib3_trace import TooManyIdleConnections

DIAL = ["dns_start", "dns_done", "connect_start", "connect_done"]
TLS = ["tls_handshake_start", "tls_handshake_done"]
WRITE = ["wrote_headers", "wrote_request", "got_first_response_byte"]


def visible(request: RequestRecord) -> list[str]:
    return [h for h in request.hooks if h != "wrote_header_field"]


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, httptrace_server: Any) -> Any:
    with Driver(request.param, httptrace_server) as driver:
        yield driver


@pytest.fixture(params=CLIENTS)
def plain(request: pytest.FixtureRequest, httptrace_http_server: Any) -> Any:
    with Driver(request.param, httptrace_http_server) as driver:
        yield driver


def test_cold_then_reused_over_tls(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    assert client.get("/").body == b"hello"
    assert client.get("/").body == b"hello"
    cold, warm = httptrace_recorder.requests
    assert visible(cold) == [
        "get_conn",
        *DIAL,
        *TLS,
        "got_conn",
        *WRITE,
        "put_idle_conn",
    ]
    assert visible(warm) == ["get_conn", "got_conn", *WRITE, "put_idle_conn"]
    assert cold.got_conn is not None and not cold.got_conn.reused
    assert warm.got_conn is not None and warm.got_conn.reused
    assert warm.got_conn.was_idle and warm.got_conn.idle_time > 0
    assert cold.connection is warm.connection
    tls = cold.getcall("tls_handshake_done").args["state"]
    assert tls.handshake_complete and tls.server_name == "localhost"
    assert tls.negotiated_protocol in (None, "http/1.1")
    assert cold.getcall("put_idle_conn").args["err"] is None
    assert cold.source is not None and cold.source.library == "urllib3"
    assert cold.status == 200 and cold.closed_at is not None


def test_plain_http_dials_inside_the_header_write(
    plain: Driver, httptrace_recorder: Recorder
) -> None:
    """http.client connects when it sends the headers: got_conn still comes before
    the first header field, as in Go."""
    plain.get("/")
    (request,) = httptrace_recorder.requests
    assert request.hooks[: request.hooks.index("wrote_headers")] == [
        "get_conn",
        *DIAL,
        "got_conn",
        *["wrote_header_field"] * request.hooks.count("wrote_header_field"),
    ]
    assert "tls_handshake_start" not in request.hooks


@pytest.mark.parametrize("kind", CLIENTS)
def test_header_fields_are_the_bytes_on_the_wire(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    from pytest_httptrace.raw_server import ReadHead, Send

    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.response(200, "ok")])
    with Driver(kind, raw) as driver:
        driver.get("/", headers={"X-Multi": "a, b", "x-lower": "v"})
    raw.wait(1)
    head = raw.received[0].split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    on_wire = [tuple(line.split(": ", 1)) for line in head]
    (request,) = httptrace_recorder.requests
    fields = [
        (e.args["key"], e.args["values"][0])
        for e in request.events
        if e.hook == "wrote_header_field"
    ]
    assert fields == on_wire
    assert ("x-lower", "v") in fields


@pytest.mark.parametrize("heard_by", ["recorder", "trace"])
def test_a_folded_header_line_is_one_field_with_its_values(
    heard_by: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """http.client writes several values of one header as one folded line
    (``Name: a\\r\\n\\tb``): one ``wrote_header_field`` with the values, as Go's
    ``WroteHeaderField(key, value []string)``; its neighbours stay one value each.
    Recorded and heard live alike."""
    from pytest_httptrace.raw_server import ReadHead, Send

    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.response(200, "ok")])
    heard: list[tuple[str, list[str]]] = []
    trace = ClientTrace(wrote_header_field=lambda k, v: heard.append((k, v)))
    with Driver("urllib3", raw) as driver:
        headers = {"X-Before": "1", "X-Fold": "a\r\n\tb", "X-After": "2"}
        if heard_by == "trace":
            with with_client_trace(trace):
                driver.get("/", headers=headers)
        else:
            driver.get("/", headers=headers)
    raw.wait(1)
    assert b"\r\nX-Fold: a\r\n\tb\r\n" in raw.received[0]  # folded on the wire
    (request,) = httptrace_recorder.requests
    recorded = [
        (e.args["key"], e.args["values"])
        for e in request.events
        if e.hook == "wrote_header_field"
    ]
    for fields in (recorded, heard) if heard_by == "trace" else (recorded,):
        mine = [f for f in fields if f[0].startswith("X-")]
        assert mine == [("X-Before", ["1"]), ("X-Fold", ["a", "b"]), ("X-After", ["2"])]


def test_connection_close_is_not_put_idle(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    client.get("/close")
    client.get("/")
    closing, after = httptrace_recorder.requests
    assert "put_idle_conn" not in closing.hooks  # Go: not kept, no PutIdleConn
    assert closing.closed_at is not None
    assert closing.connection is not None and closing.connection.closed_at is not None
    assert after.got_conn is not None and not after.got_conn.reused
    assert "connect_start" in after.hooks


def test_post_body(client: Driver, httptrace_recorder: Recorder) -> None:
    assert (
        b'"body_size": 5000' in client.request("POST", "/echo", body=b"x" * 5000).body
    )
    (request,) = httptrace_recorder.requests
    assert visible(request)[-4:] == [*WRITE, "put_idle_conn"]
    keys = [
        e.args["key"].lower() for e in request.events if e.hook == "wrote_header_field"
    ]
    assert "content-length" in keys
    assert request.getcall("wrote_request").args["err"] is None


def test_head(client: Driver, httptrace_recorder: Recorder) -> None:
    assert client.request("HEAD", "/").body == b""
    client.get("/")
    head, after = httptrace_recorder.requests
    assert head.method == "HEAD" and "put_idle_conn" in head.hooks
    assert after.got_conn is not None and after.got_conn.reused


def test_stream_left_open_while_a_second_request_dials(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    streamed = client.stream("/stream/3")
    client.get("/")
    first, second = httptrace_recorder.requests
    assert find_leaks(httptrace_recorder) == [first]
    assert second.got_conn is not None and not second.got_conn.reused
    assert first.connection is not second.connection
    assert client.read_stream(streamed)
    assert find_leaks(httptrace_recorder) == []
    put = first.getcall("put_idle_conn")
    assert put.after_return  # the call had returned before the body was read


def test_stream_closed_unread_is_not_put_idle(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    streamed = client.stream("/stream/3")
    client.close_stream(streamed)
    client.get("/")
    first, second = httptrace_recorder.requests
    assert "put_idle_conn" not in first.hooks  # Go: a body closed early is not kept
    assert first.closed_at is not None
    assert second.got_conn is not None and not second.got_conn.reused


def test_two_threads_without_context_copy(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: client.get("/delay/0.05"), range(2)))
    a, b = httptrace_recorder.requests
    assert {e.thread for e in a.events} != {e.thread for e in b.events}
    assert a.connection is not b.connection  # both in flight: two connections


def test_connection_refused(httptrace_recorder: Recorder) -> None:
    # one listener-free port on each loopback address localhost resolves to
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for kind in CLIENTS:
        httptrace_recorder.clear()
        with Driver(kind, _Fake(port)) as driver, pytest.raises(driver.error) as info:
            driver.get(f"http://127.0.0.1:{port}/")
        (request,) = httptrace_recorder.requests
        assert request.hooks == ["get_conn", "connect_start", "connect_done"]
        assert isinstance(
            request.getcall("connect_done").args["err"], ConnectionRefusedError
        )
        assert request.got_conn is None and request.connection is None
        assert request.error is info.value
        assert find_leaks(httptrace_recorder) == []


class _Fake:
    """An endpoint nobody listens on (for the refused dial)."""

    tls = False

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    def urllib3_pool_manager(self, **kw: Any) -> urllib3.PoolManager:
        return urllib3.PoolManager(**kw)


def test_untrusted_certificate(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    for kind in CLIENTS:
        httptrace_recorder.clear()
        with (
            Driver(kind, httptrace_server, trusted=False) as driver,
            pytest.raises(driver.error),
        ):
            driver.get("/")
        (request,) = httptrace_recorder.requests
        assert visible(request) == ["get_conn", *DIAL, *TLS]
        done = request.getcall("tls_handshake_done")
        assert not done.args["state"].handshake_complete
        assert "CERTIFICATE_VERIFY_FAILED" in str(done.args["err"])
        assert request.got_conn is None


def test_unresolvable_name(httptrace_recorder: Recorder) -> None:
    for kind in CLIENTS:
        httptrace_recorder.clear()
        with Driver(kind, _Fake(80)) as driver, pytest.raises(driver.error):
            driver.get("http://name.invalid/")
        (request,) = httptrace_recorder.requests
        assert request.hooks == ["get_conn", "dns_start", "dns_done"]
        assert isinstance(request.getcall("dns_done").args["err"], socket.gaierror)


def test_redirects_are_one_record_per_hop(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    if client.kind == "urllib3":
        client.pool.connection_pool_kw["retries"] = urllib3.Retry(redirect=3)
    assert client.get("/redirect/2").body == b"hello"
    hops = httptrace_recorder.requests
    assert [r.status for r in hops] == [302, 302, 200]
    assert [r.url.rpartition("/")[2] for r in hops] == ["2", "1", ""]
    assert [r.got_conn.reused for r in hops if r.got_conn] == [False, True, True]
    assert all("put_idle_conn" in r.hooks for r in hops)
    assert len({r.returned_at for r in hops}) == 1  # one call


def test_pool_full_discards_like_go_too_many_idle(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """maxsize=1 shared by 4 threads, block=False: urllib3 opens extra connections
    and closes them when the pool is full -- Go's "too many idle connections"."""
    barrier = threading.Barrier(4)
    with Driver("urllib3", httptrace_server, maxsize=1) as driver:

        def one(_: int) -> None:
            barrier.wait()
            driver.get("/delay/0.1")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(4)))
        conns = [r.connection for r in httptrace_recorder.requests if r.connection]
        assert sum(c.closed_at is not None for c in conns) == 3  # one kept
    puts = [r.getcall("put_idle_conn").args["err"] for r in httptrace_recorder.requests]
    kept = [e for e in puts if e is None]
    discarded = [e for e in puts if e is not None]
    assert len(kept) == 1 and len(discarded) == 3
    assert all(isinstance(e, TooManyIdleConnections) for e in discarded)


def test_pool_block_waits_for_the_connection(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    barrier = threading.Barrier(4)
    with Driver("urllib3", httptrace_server, maxsize=1, block=True) as driver:

        def one(_: int) -> None:
            barrier.wait()
            driver.get("/delay/0.02")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(4)))
    records = httptrace_recorder.requests
    assert len({r.connection.id for r in records if r.connection}) == 1
    assert sorted(r.got_conn.reused for r in records if r.got_conn) == [
        False,
        True,
        True,
        True,
    ]
    assert all(r.getcall("put_idle_conn").args["err"] is None for r in records)
    waited = max(
        r.getcall("got_conn").time - r.getcall("get_conn").time for r in records
    )
    assert waited >= 0.02  # one of them waited for another's request to finish


def test_retry_over_a_dropped_connection(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    from pytest_httptrace.raw_server import Close, ReadHead, Send

    raw = httptrace_raw_server
    raw.script([ReadHead(), Close()], [ReadHead(), Send.response(200, "again")])
    with Driver("urllib3", raw, retries=urllib3.Retry(total=1)) as driver:
        assert driver.get("/").body == b"again"
    failed, retried = httptrace_recorder.requests
    assert "got_first_response_byte" not in failed.hooks  # EOF: no byte arrived
    assert failed.status is None and failed.error is not None
    assert "put_idle_conn" not in failed.hooks
    assert retried.got_conn is not None and not retried.got_conn.reused  # dialed
    assert retried.connection is not failed.connection
    assert retried.status == 200 and retried.error is None


def test_many_threads_exact_attribution(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with Driver("requests", httptrace_server) as driver:
        driver.session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=50))

        def ten(i: int) -> None:
            for j in range(10):
                assert len(driver.get(f"/bytes/{i * 10 + j}").body) == i * 10 + j

        with ThreadPoolExecutor(50) as pool:
            list(pool.map(ten, range(50)))
    records = httptrace_recorder.requests
    assert len(records) == 500
    assert sorted(int(r.url.rpartition("/")[2]) for r in records) == list(range(500))
    for r in records:
        assert visible(r)[-4:] == [*WRITE, "put_idle_conn"]
        assert len({e.thread for e in r.events}) == 1
        assert all(e.request is r for e in r.events)


def test_trace_attached_in_context_only(httptrace_server: Any) -> None:
    seen: list[str] = []
    with Driver("requests", httptrace_server) as driver:
        driver.get("/")  # untraced: nothing installed
        with with_client_trace(ClientTrace(get_conn=seen.append)):
            driver.get("/")
        driver.get("/")
    assert seen == [f"localhost:{httptrace_server.port}"]


@pytest.mark.parametrize("kind", CLIENTS)
def test_forwarding_proxy_is_the_first_hop(
    kind: str, httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    from pytest_httptrace.raw_server import ReadHead, Send

    proxy = httptrace_raw_http_server
    proxy.script([ReadHead(), Send.response(200, "via proxy")])
    proxy_url = proxy.url("/").rstrip("/")
    target = "http://target.invalid/page"
    if kind == "requests":
        with requests.Session() as session:
            session.trust_env = False
            body = session.get(target, proxies={"http": proxy_url}).content
    else:
        with urllib3.ProxyManager(proxy_url, retries=False) as manager:
            body = manager.request("GET", target).data
    assert body == b"via proxy"
    assert proxy.received[0].startswith(b"GET http://target.invalid/page HTTP/1.1")
    (request,) = httptrace_recorder.requests
    # Go reports the first hop: the proxy.
    assert request.getcall("get_conn").args == {"host_port": f"localhost:{proxy.port}"}
    assert request.getcall("dns_start").args == {"host": "localhost"}
    assert visible(request) == ["get_conn", *DIAL, "got_conn", *WRITE, "put_idle_conn"]
    assert request.url == target


def test_pool_closed_before_the_return(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """The pool was closed while a response held its connection: urllib3 closes the
    connection at the return -- Go's errCloseIdle, reported through put_idle_conn."""
    from pytest_httptrace.urllib3_trace import IdlePoolClosed

    with Driver("urllib3", httptrace_server) as driver:
        response = driver.stream("/bytes/10")
        for key in list(driver.pool.pools.keys()):
            driver.pool.pools[key].close()
        assert len(response.read()) == 10  # read to its end: urllib3 releases it
    (request,) = httptrace_recorder.requests
    err = request.getcall("put_idle_conn").args["err"]
    assert isinstance(err, IdlePoolClosed)
    assert request.connection is not None and request.connection.closed_at is not None


def test_released_unread_is_not_put_idle(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """urllib3 pools a connection released before its body was read (the next
    checkout drops it, or fails on it): Go would not keep it, so no put_idle_conn."""
    with Driver("urllib3", httptrace_server) as driver:
        streamed = driver.stream("/bytes/100000")
        streamed.release_conn()  # unread
        (request,) = httptrace_recorder.requests
        assert "put_idle_conn" not in request.hooks
        assert request.closed_at is not None  # released: not a leak
        streamed.close()


class _TunnelProxy:
    """A minimal CONNECT proxy on loopback: one tunnel per connection, piped both
    ways by two threads (joined at `close`)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.requests: list[bytes] = []
        self._accept = threading.Thread(target=self._serve_one)
        self._accept.start()

    def _serve_one(self) -> None:
        client, _ = self.listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        self.requests.append(head)
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.sockets += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            t = threading.Thread(target=self._pipe, args=(a, b))
            t.start()
            self.threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._accept.join(10)
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(10)
        for s in [*self.sockets, self.listener]:
            s.close()


def test_connect_tunnel_reports_the_first_hop_and_no_tls(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """Through a CONNECT proxy the dial goes to the proxy; the target's TLS handshake
    runs inside HTTPSConnection.connect after the tunnel and is not separated from
    it: no TLS hook is called rather than a wrong one."""
    proxy = _TunnelProxy()
    try:
        with urllib3.ProxyManager(
            f"http://127.0.0.1:{proxy.port}",
            ca_certs=httptrace_server.ca_bundle(),
            retries=False,
        ) as manager:
            assert manager.request("GET", httptrace_server.url("/")).data == b"hello"
            for key in list(manager.pools.keys()):
                manager.pools[key].close()
    finally:
        proxy.close()
    assert proxy.requests[0].startswith(b"CONNECT localhost:")
    (request,) = httptrace_recorder.requests
    assert request.getcall("get_conn").args == {"host_port": f"127.0.0.1:{proxy.port}"}
    assert visible(request) == [
        "get_conn",
        "connect_start",
        "connect_done",
        "got_conn",
        *WRITE,
        "put_idle_conn",
    ]
    fields = [e.args["key"] for e in request.events if e.hook == "wrote_header_field"]
    assert fields[0] == "Host"  # the request's own header lines, not the CONNECT's
    assert request.status == 200
