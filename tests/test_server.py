"""The hypercorn test server, over loopback with plain httpx: what the client gets and
what the server's log says it saw."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest

from pytest_httptrace import server as server_module
from pytest_httptrace.server import (
    BUILTIN_ROUTES,
    Response,
    RouteError,
    ServerLog,
    TestServer,
    bind_loopback,
    start_server,
)

# -- connections in the log ------------------------------------------------------------


def test_http11_keep_alive_reuse_is_one_connection_two_requests(
    httptrace_server: TestServer,
) -> None:
    with httptrace_server.client() as client:
        first = client.get(httptrace_server.url("/"))
        second = client.get(httptrace_server.url("/echo"))
    assert (first.text, second.status_code) == ("hello", 200)
    [conn] = httptrace_server.log.connections
    assert conn.protocol == "HTTP/1.1"
    assert conn.alpn == "http/1.1"
    assert conn.tls_version is not None and conn.tls_version.startswith("TLSv1.")
    assert conn.client_addr[0] == "127.0.0.1"
    assert conn.server_addr[1] == httptrace_server.port
    assert [r.path for r in conn.requests] == ["/", "/echo"]
    assert [r.connection_id for r in conn.requests] == [conn.id, conn.id]
    assert httptrace_server.log.requests == conn.requests
    httptrace_server.log.wait_until(lambda log: conn.closed_at is not None)
    assert conn.closed_at is not None and conn.closed_at >= conn.opened_at


def test_http2_two_concurrent_streams_share_one_connection(
    httptrace_server: TestServer,
) -> None:
    async def main() -> list[httpx.Response]:
        async with httptrace_server.async_client(http2=True) as client:
            url = httptrace_server.url("/delay/0.1")
            return list(await asyncio.gather(client.get(url), client.get(url)))

    responses = asyncio.run(main())
    assert [r.http_version for r in responses] == ["HTTP/2", "HTTP/2"]
    log = httptrace_server.log
    log.wait_until(lambda log: all(r.finished_at for r in log.requests))
    [conn] = log.connections
    assert (conn.protocol, conn.alpn) == ("HTTP/2", "h2")
    first, second = conn.requests
    assert first.http_version == second.http_version == "2"
    assert first.finished_at is not None and second.finished_at is not None
    assert first.started_at < second.finished_at
    assert second.started_at < first.finished_at  # both streams were open at once


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_close_forces_a_new_connection(
    httptrace_server: TestServer, http2: bool
) -> None:
    with httptrace_server.client(http2=http2) as client:
        closing = client.get("/close")
        assert client.get("/").status_code == 200
    if not http2:
        assert closing.headers["connection"] == "close"
    first, second = httptrace_server.log.connections
    if http2:
        # HTTP/2 races: the client may open the next stream before it reads the
        # GOAWAY. The GOAWAY's last stream id says that stream was not processed,
        # so the client retries it on a new connection (the server, unaware, may
        # still have run the handler on the old one: .log shows what it saw).
        assert [r.path for r in first.requests] in (["/close"], ["/close", "/"])
    else:
        assert [r.path for r in first.requests] == ["/close"]
    assert [r.path for r in second.requests] == ["/"]


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_abort_is_a_client_error(httptrace_server: TestServer, http2: bool) -> None:
    with httptrace_server.client(http2=http2, timeout=3) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/abort")
        assert client.get("/").status_code == 200  # the server carries on
    aborted = httptrace_server.log.requests[0]
    assert (aborted.path, aborted.status) == ("/abort", 200)


def test_log_clear_then_a_kept_connection_shows_again(
    httptrace_server: TestServer,
) -> None:
    with httptrace_server.client() as client:
        client.get("/")
        httptrace_server.log.clear()
        assert httptrace_server.log.connections == []
        client.get("/bytes/1")
    [conn] = httptrace_server.log.connections
    assert [r.path for r in conn.requests] == ["/", "/bytes/1"]  # its full history
    assert [r.path for r in httptrace_server.log.requests] == ["/bytes/1"]


def test_log_wait_until_times_out_with_the_log_in_the_message() -> None:
    with pytest.raises(TimeoutError, match="ServerLog 0 connections"):
        ServerLog().wait_until(lambda log: bool(log.requests), timeout=0.01)


# -- 100 Continue ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http2", "expect", "sent"),
    [(False, True, True), (False, False, False), (True, True, False)],
    ids=["http1-expect", "http1-no-expect", "http2-expect"],
)
def test_log_records_whether_100_continue_was_sent(
    httptrace_server: TestServer, http2: bool, expect: bool, sent: bool
) -> None:
    headers = {"Expect": "100-continue"} if expect else {}
    with httptrace_server.client(http2=http2) as client:
        response = client.post("/echo", content=b"x" * 10, headers=headers)
    assert response.json()["body_size"] == 10
    [request] = httptrace_server.log.requests
    assert request.sent_100_continue is sent
    assert request.body_size == 10
    assert request.header("EXPECT") == ("100-continue" if expect else None)


# -- built-in routes -------------------------------------------------------------------


def test_builtin_routes(httptrace_server: TestServer) -> None:
    with httptrace_server.client() as client:
        assert client.get("/delay/0.01").text == "delayed 0.01s"
        teapot = client.post("/status/418", content=b"unread")
        assert (teapot.status_code, teapot.text) == (418, "418 I'm a Teapot")
        assert teapot.headers["connection"] == "close"  # as hypercorn will close
        assert client.get("/status/204").content == b""
        assert client.get("/status/150").status_code == 400
        assert client.get("/bytes/70000").content == (b"0123456789abcdef" * 4375)
        hops = client.get("/redirect/3", follow_redirects=True)
        assert hops.text == "hello"
        assert [r.url.path for r in hops.history] == [
            "/redirect/3",
            "/redirect/2",
            "/redirect/1",
        ]
        echo = client.put("/echo?a=1", content=b"abc", headers={"X-Test": "yes"})
        document = echo.json()
    assert echo.headers["content-type"] == "application/json"
    assert document["method"] == "PUT"
    assert document["query"] == "a=1"
    assert document["body_size"] == 3
    assert ["x-test", "yes"] in document["headers"]
    teapot_log = httptrace_server.log.requests[1]
    assert (teapot_log.status, teapot_log.body_size) == (418, 0)  # never read


def test_stream_sends_chunks_apart(httptrace_server: TestServer) -> None:
    with (
        httptrace_server.client() as client,
        client.stream("GET", "/stream/3?gap=0.03") as response,
    ):
        chunks = list(response.iter_raw())
    assert chunks == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n"]


def test_unknown_path_is_404_listing_the_routes(httptrace_server: TestServer) -> None:
    with httptrace_server.client() as client:
        response = client.get("/nope")
    assert response.status_code == 404
    assert response.text.startswith("no route for GET /nope\n")
    for template, _ in BUILTIN_ROUTES:
        assert f"  {template} " in response.text


def _h2_exchange(server: TestServer, path: str) -> list[dict[bytes, bytes]]:
    """Every response head (1xx included) of one HTTP/2 GET, read with h2 itself."""
    import h2.config
    import h2.connection
    import h2.events

    context = server.ssl_context()
    context.set_alpn_protocols(["h2"])
    heads: list[dict[bytes, bytes]] = []
    with (
        socket.create_connection((server.host, server.port), timeout=3) as tcp,
        context.wrap_socket(tcp, server_hostname=server.host) as sock,
    ):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        request = [(":method", "GET"), (":path", path), (":scheme", "https")]
        conn.send_headers(1, [*request, (":authority", server.host)], end_stream=True)
        sock.sendall(conn.data_to_send())
        while data := sock.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(
                    event,
                    (
                        h2.events.InformationalResponseReceived,
                        h2.events.ResponseReceived,
                    ),
                ):
                    heads.append({bytes(k): bytes(v) for k, v in event.headers})
                if isinstance(event, h2.events.StreamEnded):
                    return heads
            sock.sendall(conn.data_to_send())
    raise AssertionError(f"the stream did not end; heads: {heads}")


def test_early_hints_sends_103_over_http2(httptrace_server: TestServer) -> None:
    hint, final = _h2_exchange(httptrace_server, "/early-hints")
    assert hint[b":status"] == b"103"
    assert hint[b"link"] == b"</style.css>; rel=preload; as=style"
    assert final[b":status"] == b"200"


def test_early_hints_over_http11_says_where_to_go(httptrace_server: TestServer) -> None:
    with httptrace_server.client() as client:
        response = client.get("/early-hints")
    assert response.status_code == 200
    assert "httptrace_raw_server" in response.text


# -- bad input -------------------------------------------------------------------------


def test_malformed_request_gets_400_and_the_server_keeps_serving(
    httptrace_server: TestServer,
) -> None:
    context = httptrace_server.ssl_context()
    with (
        socket.create_connection(
            ("127.0.0.1", httptrace_server.port), timeout=3
        ) as tcp,
        context.wrap_socket(tcp, server_hostname="localhost") as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost localhost\r\n\r\n")  # no colon
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400 ")
    with httptrace_server.client() as client:
        assert client.get("/").text == "hello"
    malformed, good = httptrace_server.log.connections
    assert (malformed.requests, len(good.requests)) == ([], 1)


def test_raising_route_answers_500_and_is_reported(
    httptrace_server: TestServer,
) -> None:
    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    httptrace_server.add_route("/boom", boom)
    with httptrace_server.client() as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert "ValueError: boom" in response.text
    with pytest.raises(
        RouteError, match=r"GET /boom raised ValueError\('boom'\)"
    ) as info:
        httptrace_server.check()
    assert isinstance(info.value.__cause__, ValueError)
    httptrace_server.check()  # reported once


def test_route_raising_mid_response_aborts_it(httptrace_server: TestServer) -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"10")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        raise KeyError("half")

    httptrace_server.add_route("/half", half)
    with (
        httptrace_server.client(timeout=3) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get("/half")
    [error] = httptrace_server.pop_errors()
    assert (error.method, error.path) == ("GET", "/half")
    assert isinstance(error.error, KeyError)


def test_several_errors_are_listed_in_one(httptrace_server: TestServer) -> None:
    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError(scope["path"])

    httptrace_server.add_route("/a", boom)
    httptrace_server.add_route("/b", boom)
    with httptrace_server.client() as client:
        client.get("/a")
        client.get("/b")
    with pytest.raises(RouteError, match=r"(?s)/a raised.*and 1 more:.*/b raised"):
        httptrace_server.check()


def test_error_of_a_request_from_an_earlier_test_is_not_blamed_on_this_one() -> None:
    release = threading.Event()

    async def slow_boom(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        raise ValueError("late")

    with start_server() as srv, srv.client() as client:
        srv.add_route("/slow", slow_boom)
        responses: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: responses.append(client.get("/slow")))
        thread.start()
        srv.log.wait_until(lambda log: bool(log.requests))
        srv.reset()  # the fixture does this between tests
        release.set()
        thread.join()
        assert responses[0].status_code == 500
        assert srv.pop_errors() == []
        assert [type(e) for e in srv.internal_errors] == [RouteError]


# -- custom routes ---------------------------------------------------------------------


def test_add_route_takes_apps_responses_and_bodies(
    httptrace_server: TestServer,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": scope["method"].encode()})

    httptrace_server.add_route("/app", app)
    httptrace_server.add_route("/text", "some text")
    httptrace_server.add_route("/bytes", b"\x00\x01")
    httptrace_server.add_route("/", Response(418, {"X-Tea": "yes"}, "shadowed"))
    with httptrace_server.client() as client:
        created = client.post("/app")
        text = client.get("/text")
        raw = client.get("/bytes")
        tea = client.get("/")
    assert (created.status_code, created.text) == (201, "POST")
    assert (text.text, text.headers["content-type"]) == (
        "some text",
        "text/plain; charset=utf-8",
    )
    assert (raw.content, raw.headers["content-length"]) == (b"\x00\x01", "2")
    assert (tea.status_code, tea.headers["x-tea"], tea.text) == (418, "yes", "shadowed")


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_routes_with_path_parameters_and_methods(
    httptrace_server: TestServer, http2: bool
) -> None:
    """Issue #13 item 12: a REST client under test needs /items/{id} and methods."""
    seen: list[dict[str, str]] = []

    async def item(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path_params"])
        body = json.dumps(scope["path_params"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    srv = httptrace_server
    srv.add_route("/items/{id}", item, methods=["GET"])
    srv.add_route("/items/{id}", Response(204), methods=["delete"])
    srv.add_route("/items/new", "the exact path wins")
    srv.add_route("/users/{user}/items/{id}", item)
    srv.add_route("/files/{rest:path}", item)
    with srv.client(http2=http2) as client:
        assert client.get("/items/42").json() == {"id": "42"}
        assert client.delete("/items/42").status_code == 204
        assert client.get("/items/new").text == "the exact path wins"
        put = client.put("/items/42", content=b"x")
        assert (put.status_code, put.headers["allow"]) == (405, "DELETE, GET")
        assert client.get("/users/ann/items/7").json() == {"user": "ann", "id": "7"}
        assert client.get("/files/a/b.txt").json() == {"rest": "a/b.txt"}
        assert client.get("/items/42/more").status_code == 404  # one segment only
        assert client.get("/items/").status_code == 404
    assert seen[0] == {"id": "42"}
    assert [r.method for r in srv.log.requests[:2]] == ["GET", "DELETE"]


def test_a_method_route_leaves_other_methods_to_the_built_in_routes(
    httptrace_server: TestServer,
) -> None:
    httptrace_server.add_route("/echo", "posted", methods=["POST"])
    with httptrace_server.client() as client:
        assert client.post("/echo", content=b"x").text == "posted"
        assert client.get("/echo").json()["method"] == "GET"  # the built-in /echo


@pytest.mark.parametrize(
    ("path", "kwargs", "error", "message"),
    [
        ("/a/{id}/{id}", {}, ValueError, r"names \{id\} twice"),
        ("/a/{id", {}, ValueError, r"written \{name\}"),
        ("/a/{1x}", {}, ValueError, r"written \{name\}"),
        ("/a", {"methods": "GET"}, TypeError, r"a list of methods, e.g. \['GET'\]"),
        ("/a", {"methods": []}, ValueError, "methods is empty"),
    ],
)
def test_add_route_refuses_bad_templates_and_methods(
    httptrace_server: TestServer,
    path: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        httptrace_server.add_route(path, "x", **kwargs)


def test_hop_by_hop_headers_are_dropped_over_http2(
    httptrace_server: TestServer,
) -> None:
    httptrace_server.add_route("/hop", Response(200, {"Connection": "close"}, "ok"))
    with httptrace_server.client(http2=True, timeout=3) as client:
        response = client.get("/hop")  # h2 refuses the header: hypercorn would hang
    assert (response.http_version, response.text) == ("HTTP/2", "ok")
    assert "connection" not in response.headers


def test_reset_removes_routes_and_clears_the_log(httptrace_server: TestServer) -> None:
    httptrace_server.add_route("/x", "x")
    with httptrace_server.client() as client:
        assert client.get("/x").status_code == 200
        httptrace_server.reset()
        assert httptrace_server.log.requests == []
        assert client.get("/x").status_code == 404


@pytest.mark.parametrize(
    ("path", "target", "error", "message"),
    [
        ("x", "body", ValueError, "must be a str starting with '/'"),
        ("/x", 42, TypeError, "takes an ASGI app, a Response, str or bytes; got 42"),
    ],
)
def test_add_route_refuses_bad_input(
    httptrace_server: TestServer,
    path: str,
    target: Any,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        httptrace_server.add_route(path, target)


def test_response_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"200\.\.599, got 103 \(interim 1xx"):
        Response(103)
    with pytest.raises(TypeError, match="bytes or str"):
        Response(200, body=42)  # type: ignore[arg-type]
    assert Response(200, {"A": "1"}).headers == (("A", "1"),)


# -- the plain server and the client conveniences -------------------------------------


def test_plain_server_http11_and_http2_by_prior_knowledge(
    httptrace_http_server: TestServer,
) -> None:
    assert httptrace_http_server.url("/a").startswith("http://localhost:")
    with httptrace_http_server.client() as client:
        assert client.get("/").text == "hello"
    with httptrace_http_server.client(http1=False, http2=True) as client:
        assert client.get("/").http_version == "HTTP/2"
    http11, http2 = httptrace_http_server.log.connections
    assert (http11.protocol, http11.tls_version, http11.alpn) == (
        "HTTP/1.1",
        None,
        None,
    )
    assert http2.protocol == "HTTP/2"


def test_url_and_ssl_context(httptrace_server: TestServer) -> None:
    assert httptrace_server.url() == f"https://localhost:{httptrace_server.port}/"
    assert httptrace_server.url("echo").endswith(f":{httptrace_server.port}/echo")
    first, second = httptrace_server.ssl_context(), httptrace_server.ssl_context()
    assert first is not second  # httpcore sets ALPN on the context it is given
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    # The certificate also names 127.0.0.1.
    url = f"https://127.0.0.1:{httptrace_server.port}/"
    assert httpx.get(url, verify=first, trust_env=False).text == "hello"


def test_client_ignores_proxy_variables(
    httptrace_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with httptrace_server.client() as client:
        assert client.get("/").text == "hello"
    with (
        pytest.raises(httpx.ConnectError),
        httptrace_server.client(trust_env=True) as c,
    ):
        c.get("/")  # the default matters: with the environment it fails


def test_untrusted_client_fails_the_handshake_only(
    httptrace_server: TestServer,
) -> None:
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ConnectError):
        client.get(httptrace_server.url())
    with httptrace_server.client() as client:
        assert client.get("/").status_code == 200
    assert len(httptrace_server.log.connections) == 1  # handshakes that fail: not seen


# -- lifecycle -------------------------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_stop_with_an_idle_tls_connection_held(http2: bool) -> None:
    srv = start_server()
    with srv.client(http2=http2) as client:
        client.get("/")
        srv.stop()  # asyncio alone would wait 30 s for this client's close_notify
        names = [thread.name for thread in threading.enumerate()]
        assert f"httptrace-server-{srv.port}" not in names
        with pytest.raises(httpx.TransportError):
            client.get("/")
    assert srv.internal_errors == []
    srv.stop()  # again: nothing happens


def test_stop_cancels_a_request_in_flight() -> None:
    outcome: list[object] = []
    with start_server() as srv, srv.client() as client:

        def request() -> None:
            try:
                outcome.append(client.get("/delay/30").status_code)
            except httpx.TransportError as error:
                outcome.append(error)

        thread = threading.Thread(target=request)
        thread.start()
        srv.log.wait_until(lambda log: bool(log.requests))
        srv.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert outcome and outcome[0] != 200


def test_start_server_is_a_context_manager() -> None:
    with start_server(tls=False) as srv:
        assert repr(srv) == f"<TestServer http://localhost:{srv.port} running>"
        with srv.client() as client:
            assert client.get("/").text == "hello"
    assert repr(srv).endswith(" stopped>")


def test_bind_loopback_binds_every_address_of_localhost_on_one_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    both = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 0)),  # not loopback
    ]
    monkeypatch.setattr(server_module.socket, "getaddrinfo", lambda *a, **k: both)
    sockets = bind_loopback("localhost")
    try:
        names = [sock.getsockname()[:2] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    port = names[0][1]
    assert names == [("::1", port), ("127.0.0.1", port)]


def test_the_server_listens_on_every_address_localhost_resolves_to(
    httptrace_server: TestServer,
) -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    for address in addresses:
        with socket.create_connection((address, httptrace_server.port), timeout=3):
            pass


def test_importing_the_servers_imports_no_server_library() -> None:
    code = (
        "import sys, pytest_httptrace.server, pytest_httptrace.raw_server\n"
        "heavy = ('hypercorn', 'trustme', 'h2', 'pytest')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.replace("'", '"')) == []


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
@pytest.mark.parametrize("path", ["/stream/50", "/bytes/1000000", "/"])
def test_an_abandoned_connection_is_cleaned_up_without_warnings(
    tls: bool, path: str
) -> None:
    """Issue #13 item 9: a client that drops its socket mid-response (a leaked,
    garbage-collected connection) leaves nothing on the server's side to warn about."""
    import gc
    import warnings

    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with start_server(tls=tls) as srv:
                raw = socket.create_connection((srv.host, srv.port))
                sock: socket.socket = raw
                if tls:
                    sock = srv.ssl_context().wrap_socket(raw, server_hostname=srv.host)
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                assert sock.recv(100).startswith(b"HTTP/1.1 200")
                raw.close() if not tls else sock.close()  # no close_notify, no drain
                srv.log.wait_until(
                    lambda log: all(c.closed_at is not None for c in log.connections)
                )
                assert not srv._tracker._live
                gc.collect()
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert [str(w.message) for w in caught] == []
    assert unraisable == []
