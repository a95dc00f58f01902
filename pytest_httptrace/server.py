"""The local test server: hypercorn on loopback, TLS by a trustme CA, HTTP/1.1 + HTTP/2.

Usable with or without pytest::

    from pytest_httptrace.server import start_server

    with start_server() as srv, srv.client(http2=True) as client:
        assert client.get(srv.url("/")).text == "hello"
        assert srv.log.connections[0].protocol == "HTTP/2"

In pytest, the ``httptrace_server`` fixture gives the same object, started once per
session (per xdist worker) and reset after each test. The server listens on every
loopback address ``localhost`` resolves to (same port), so a client dialling
``localhost`` never fails on its first address. Built-in routes (`BUILTIN_ROUTES`) are
httpbin-like; `TestServer.add_route` adds more. ``.log`` (`ServerLog`) is what the
server saw: each connection (protocol, TLS version, ALPN, open and close times) and each
request on it, so a test can hold a client-side trace against the server-side truth.

hypercorn, trustme and h2 are imported when a server starts, not when this module is
imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import itertools
import json
import logging
import re
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from ._certs import client_ssl_context, new_ca, server_ssl_context

if TYPE_CHECKING:
    import aiohttp
    import httpx
    import requests
    import trustme
    import urllib3
    from hypercorn.config import Config
    from typing_extensions import Self

__all__ = [
    "BUILTIN_ROUTES",
    "ASGIApp",
    "ConnectionLog",
    "RequestLog",
    "Response",
    "RouteError",
    "ServerLog",
    "TestServer",
    "bind_loopback",
    "start_server",
]

logger = logging.getLogger("pytest_httptrace.server")

# ASGI, as plain dicts (hypercorn's TypedDicts are too narrow for routes users write).
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long closing one TLS connection may wait for the peer's ``close_notify``.
#: asyncio's default is 30 s, and a client holding an idle keep-alive connection never
#: answers (it is not reading), so stopping the server would hang that long.
SSL_SHUTDOWN_TIMEOUT = 0.25
#: How long `TestServer.stop` lets requests in flight finish before cancelling them.
GRACEFUL_TIMEOUT = 0.2
#: How long `start_server` and `TestServer.stop` wait for the server thread.
THREAD_TIMEOUT = 10.0
#: Never close a connection the test did not ask to close (hypercorn's defaults are a
#: 5 s idle timeout and ``Connection: close`` on the 1000th response).
KEEP_ALIVE_TIMEOUT = 24 * 3600.0
KEEP_ALIVE_MAX_REQUESTS = sys.maxsize


# -- what the server saw ------------------------------------------------------------


@dataclass(eq=False)
class RequestLog:
    """One request as the server saw it. Filled in while the request runs."""

    method: str
    path: str
    query: str
    #: Header names in lower case, in the order received.
    headers: list[tuple[str, str]]
    #: ``"1.1"`` or ``"2"``, as in the ASGI scope.
    http_version: str
    #: `ConnectionLog.id` of the connection that carried it.
    connection_id: int | None
    #: `time.monotonic` when the route handler started.
    started_at: float
    #: Bytes of request body the handler read (routes that do not read the body, like
    #: ``/status/{code}``, leave 0).
    body_size: int = 0
    #: The server sent ``100 Continue`` for this request: hypercorn does so by itself on
    #: HTTP/1.1 for every ``Expect: 100-continue`` request, right after the head, and
    #: never on HTTP/2. Observed on the wire, not inferred.
    sent_100_continue: bool = False
    #: Final status sent, or None if no response was started.
    status: int | None = None
    finished_at: float | None = None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


@dataclass(eq=False)
class ConnectionLog:
    """One connection as the server saw it (after the TLS handshake, if any)."""

    #: 1, 2, 3… in accept order; never reused during the server's life.
    id: int
    client_addr: tuple[str, int]
    server_addr: tuple[str, int]
    protocol: Literal["HTTP/1.1", "HTTP/2"]
    #: e.g. ``"TLSv1.3"``; None without TLS.
    tls_version: str | None
    #: The ALPN protocol agreed (``"h2"``, ``"http/1.1"``) or None.
    alpn: str | None
    #: `time.monotonic` at accept (after the handshake) and at close.
    opened_at: float
    closed_at: float | None = None
    requests: list[RequestLog] = field(default_factory=list)


class ServerLog:
    """Connections and requests the server saw, in order. Thread-safe.

    Example::

        with srv.client() as client:
            client.get(srv.url("/"))
            client.get(srv.url("/"))
        [conn] = srv.log.connections
        assert [r.path for r in conn.requests] == ["/", "/"]
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._connections: list[ConnectionLog] = []
        self._requests: list[RequestLog] = []

    @property
    def connections(self) -> list[ConnectionLog]:
        """Connections seen since the last `clear`, in accept order (a copy)."""
        with self._cond:
            return list(self._connections)

    @property
    def requests(self) -> list[RequestLog]:
        """Every request seen since the last `clear`, in start order (a copy)."""
        with self._cond:
            return list(self._requests)

    def clear(self) -> None:
        """Forget everything seen so far.

        A connection opened before the clear shows up again when it serves a request.
        """
        with self._cond:
            self._connections.clear()
            self._requests.clear()

    def wait_until(
        self, predicate: Callable[[ServerLog], bool], timeout: float = 5.0
    ) -> None:
        """Block until ``predicate(log)`` is true; raise `TimeoutError` after `timeout`.

        The server writes the log from its own thread, so what happens after the
        response (a connection's ``closed_at``) may land a moment after the client
        returned::

            srv.log.wait_until(lambda log: log.connections[0].closed_at is not None)
        """
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(
                    f"server log not as expected after {timeout}s: {self}"
                )

    def __repr__(self) -> str:
        with self._cond:
            return (
                f"<ServerLog {len(self._connections)} connections, "
                f"{len(self._requests)} requests>"
            )

    # Called from the server thread.

    def _add_connection(self, conn: ConnectionLog) -> None:
        with self._cond:
            self._connections.append(conn)
            self._cond.notify_all()

    def _add_request(self, conn: ConnectionLog | None, request: RequestLog) -> None:
        with self._cond:
            if conn is not None:
                if conn not in self._connections:  # opened before a clear()
                    self._connections.append(conn)
                conn.requests.append(request)
            self._requests.append(request)
            self._cond.notify_all()

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()


# -- routes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """A canned response for `TestServer.add_route`: ``Response(404, body="nope")``.

    ``Content-Length`` is added unless `headers` sets it or ``Transfer-Encoding``.
    """

    status: int = 200
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = ()
    body: bytes | str = b""

    def __post_init__(self) -> None:
        if not (isinstance(self.status, int) and 200 <= self.status <= 599):
            raise ValueError(
                f"Response status must be an int in 200..599, got {self.status!r} "
                "(interim 1xx responses: use httptrace_raw_server)"
            )
        if not isinstance(self.body, (bytes, str)):
            raise TypeError(f"Response body must be bytes or str, not {self.body!r}")
        pairs = (
            self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        )
        object.__setattr__(self, "headers", tuple((str(k), str(v)) for k, v in pairs))


RouteTarget = str | bytes | Response | ASGIApp


class RouteError(Exception):
    """A route handler raised: the server answered 500 (or aborted the response).

    Raised at the end of the test whose request caused it (by `TestServer.check`); the
    handler's exception is the ``__cause__``. A handler that raises after its test is
    over is logged and kept in `TestServer.internal_errors`, never blamed on the test
    running at the time.
    """

    def __init__(self, method: str, path: str, error: BaseException) -> None:
        self.method = method
        self.path = path
        self.error = error
        super().__init__(
            f"route handler for {method} {path} raised {error!r}; "
            "the server answered 500 or aborted the response"
        )


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)


class _Exchange:
    """One request inside the server: what handlers use to read and answer."""

    def __init__(
        self, server: TestServer, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.server = server
        self.scope = scope
        self._receive = receive
        self._send = send
        self.started = False
        self.finished = False
        self.disconnected = False
        #: The connection failed under a `send` (e.g. the client wrote after the
        #: server's close_notify): the client's doing, not the handler's.
        self.connection_error: OSError | None = None
        client = scope.get("client")
        self.live = server._tracker.find(client) if client else None
        headers = [
            (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
            for k, v in scope["headers"]
        ]
        self.log = RequestLog(
            method=scope["method"],
            path=scope["path"],
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=headers,
            http_version=scope["http_version"],
            connection_id=self.live.log.id if self.live else None,
            started_at=time.monotonic(),
        )
        if self.live is not None:
            self.live.begin(self)
        server.log._add_request(self.live.log if self.live else None, self.log)

    @property
    def is_h2(self) -> bool:
        return bool(self.scope["http_version"] == "2")

    async def receive(self) -> Message:
        """The ASGI receive, counting body bytes into the log."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.log.body_size += len(message.get("body", b""))
        elif message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        """The ASGI send, logging the status. Drops hop-by-hop headers on HTTP/2.

        hypercorn passes them to h2, which refuses them with an error hypercorn
        swallows: the client would wait for a response that never comes.
        """
        if message["type"] == "http.response.start":
            self.started = True
            self.log.status = int(message["status"])
            if self.is_h2:
                message = dict(message)
                message["headers"] = [
                    (k, v)
                    for k, v in message.get("headers", ())
                    if bytes(k).lower().decode("latin-1") not in _HOP_BY_HOP
                ]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            self.finished = True
        try:
            await self._send(message)
        except OSError as error:
            self.connection_error = error
            raise
        if self.finished:
            self.close()

    def close(self) -> None:
        """The response is out (or never will be): log it, the connection is idle."""
        if self.log.finished_at is None:
            self.log.finished_at = time.monotonic()
            if self.live is not None:
                self.live.end(self)
            self.server.log._changed()

    async def read_body(self) -> bytes:
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def start(
        self, status: int, headers: Iterable[tuple[str, str]] = (), length: int = -1
    ) -> None:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if length >= 0:
            raw.append((b"content-length", str(length).encode()))
        await self.send(
            {"type": "http.response.start", "status": status, "headers": raw}
        )

    async def body(self, data: bytes, *, more: bool = False) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(
        self,
        status: int,
        body: bytes | str = b"",
        headers: Iterable[tuple[str, str]] = (),
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        headers = [*headers]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.insert(0, ("content-type", content_type))
        await self.start(status, headers, len(data))
        await self.body(data)

    async def abort(self) -> None:
        """Drop the response mid-way, so the client gets an error at once.

        HTTP/1.1: returning without finishing the body makes hypercorn close the
        connection. HTTP/2: hypercorn would leave the stream open (the client waits for
        its read timeout), so reset the stream; failing that, drop the connection.
        """
        if not self.is_h2:
            return
        if not await _h2_reset_stream(self._send) and self.live is not None:
            self.live.transport.abort()

    async def goaway(self) -> None:
        """HTTP/2's ``Connection: close``: tell the client to open a new connection."""
        await _h2_goaway(self._send)


# hypercorn 0.18 has no ASGI way to reset an HTTP/2 stream or send GOAWAY. The ASGI
# `send` it hands the app is the bound method `HTTPStream.app_send`; the stream's `send`
# is `H2Protocol.stream_send`, whose `connection` is the h2 `H2Connection`. Touch them
# only here, and fall back (return False) if that shape ever changes.


def _h2_protocol(send: Send) -> tuple[Any, int] | None:
    stream = getattr(send, "__self__", None)
    protocol = getattr(getattr(stream, "send", None), "__self__", None)
    stream_id = getattr(stream, "stream_id", None)
    connection = getattr(protocol, "connection", None)
    if (
        isinstance(stream_id, int)
        and hasattr(connection, "reset_stream")
        and hasattr(protocol, "_flush")
    ):
        return protocol, stream_id
    return None


async def _h2_reset_stream(send: Send) -> bool:
    found = _h2_protocol(send)
    if found is None:
        return False
    protocol, stream_id = found
    import h2.errors
    import h2.exceptions

    try:
        protocol.connection.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
    except h2.exceptions.ProtocolError:
        return False
    await protocol._flush()
    return True


async def _h2_goaway(send: Send) -> bool:
    found = _h2_protocol(send)
    if found is None:
        return False
    protocol, stream_id = found
    # last_stream_id is this stream's: a stream the client opened meanwhile was not
    # processed, so the client retries it on a new connection. (h2's default, the
    # highest stream it received, would promise an answer that never comes.)
    protocol.connection.close_connection(last_stream_id=stream_id)
    await protocol._flush()
    return True


def _query_float(ex: _Exchange, name: str, default: float, maximum: float) -> float:
    for part in ex.log.query.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            with contextlib.suppress(ValueError):
                return min(max(float(value), 0.0), maximum)
    return default


async def _hello(ex: _Exchange, match: re.Match[str]) -> None:
    await ex.respond(200, "hello")


async def _status(ex: _Exchange, match: re.Match[str]) -> None:
    code = int(match[1])
    if not 200 <= code <= 599:
        await ex.respond(
            400, f"status must be 200..599, got {code} (1xx: use httptrace_raw_server)"
        )
        return
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else ""
    headers = []
    if ex.log.http_version != "2" and (
        ex.log.header("content-length") not in (None, "0")
        or ex.log.header("transfer-encoding") is not None
    ):
        # hypercorn closes an HTTP/1.1 connection whose request body is not all in
        # when the response ends, without a word: a race for a client reusing it.
        headers.append(("connection", "close"))
    await ex.respond(code, f"{code} {phrase}".strip(), headers)


async def _delay(ex: _Exchange, match: re.Match[str]) -> None:
    seconds = min(float(match[1]), 60.0)
    await asyncio.sleep(seconds)
    await ex.respond(200, f"delayed {seconds:g}s")


async def _stream(ex: _Exchange, match: re.Match[str]) -> None:
    n = int(match[1])
    gap = _query_float(ex, "gap", 0.01, 10.0)
    await ex.start(200, [("content-type", "text/plain; charset=utf-8")])
    for i in range(n):
        if i:
            await asyncio.sleep(gap)
        await ex.body(f"chunk {i}\n".encode(), more=True)
    await ex.body(b"")


_PATTERN = b"0123456789abcdef" * 4096  # 64 KiB


async def _bytes(ex: _Exchange, match: re.Match[str]) -> None:
    n = min(int(match[1]), 100 * 2**20)
    await ex.start(200, [("content-type", "application/octet-stream")], n)
    while n > len(_PATTERN):
        await ex.body(_PATTERN, more=True)
        n -= len(_PATTERN)
    await ex.body(_PATTERN[:n])


async def _close(ex: _Exchange, match: re.Match[str]) -> None:
    await ex.respond(200, "closing", [("connection", "close")])
    if ex.is_h2:
        await ex.goaway()


async def _early_hints(ex: _Exchange, match: re.Match[str]) -> None:
    link = "</style.css>; rel=preload; as=style"
    if "http.response.early_hint" in ex.scope.get("extensions", {}):
        await ex.send({"type": "http.response.early_hint", "links": [link.encode()]})
        await ex.respond(200, "hello", [("link", link)])
    else:  # hypercorn sends no 1xx on HTTP/1.1
        await ex.respond(
            200,
            "103 Early Hints go out over HTTP/2 only; "
            "for HTTP/1.1 use httptrace_raw_server\n",
            [("link", link)],
        )


async def _redirect(ex: _Exchange, match: re.Match[str]) -> None:
    n = int(match[1])
    if n == 0:
        await ex.respond(200, "hello")
        return
    location = "/" if n == 1 else f"/redirect/{n - 1}"
    await ex.respond(302, f"redirecting to {location}", [("location", location)])


async def _echo(ex: _Exchange, match: re.Match[str]) -> None:
    body = await ex.read_body()
    document = {
        "method": ex.log.method,
        "path": ex.log.path,
        "query": ex.log.query,
        "http_version": ex.log.http_version,
        "headers": ex.log.headers,
        "body_size": len(body),
    }
    await ex.respond(200, json.dumps(document), content_type="application/json")


async def _abort(ex: _Exchange, match: re.Match[str]) -> None:
    await ex.start(200, [("content-type", "application/octet-stream")], 1024)
    await ex.body(b"x" * 100, more=True)
    if ex.is_h2:
        await asyncio.sleep(0.005)  # let hypercorn's send task put the DATA on the wire
    await ex.abort()


Handler = Callable[[_Exchange, "re.Match[str]"], Awaitable[None]]


@dataclass(frozen=True)
class _BuiltinRoute:
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    description: str


def _route(template: str, handler: Handler, description: str) -> _BuiltinRoute:
    regex = re.sub(r"\{(\w+)\}", r"([0-9]+(?:\\.[0-9]+)?)", template)
    return _BuiltinRoute(template, re.compile(regex), handler, description)


#: The built-in routes: ``(template, description)`` for each.
_BUILTINS = (
    _route("/", _hello, "200 'hello'"),
    _route("/status/{code}", _status, "that status (200..599), body not read"),
    _route("/delay/{seconds}", _delay, "200 after sleeping (at most 60 s)"),
    _route("/stream/{n}", _stream, "n chunks, ?gap= seconds apart (0.01)"),
    _route("/bytes/{n}", _bytes, "n bytes, with Content-Length"),
    _route("/close", _close, "200 with Connection: close (HTTP/2: GOAWAY)"),
    _route("/early-hints", _early_hints, "103 with a Link header, then 200 (HTTP/2)"),
    _route("/redirect/{n}", _redirect, "n hops of 302, ending at /"),
    _route("/echo", _echo, "reads the body; JSON of method, headers, body size"),
    _route("/abort", _abort, "drops the response mid-body (HTTP/2: RST_STREAM)"),
)
BUILTIN_ROUTES: tuple[tuple[str, str], ...] = tuple(
    (r.template, r.description) for r in _BUILTINS
)


def _not_found_text(method: str, path: str) -> str:
    lines = [f"no route for {method} {path}", "", "built-in routes:"]
    lines += [f"  {template:<18} {text}" for template, text in BUILTIN_ROUTES]
    return "\n".join(lines) + "\n"


def _canned(target: str | bytes | Response) -> ASGIApp:
    if isinstance(target, Response):
        response = target
    elif isinstance(target, str):
        response = Response(
            200, [("content-type", "text/plain; charset=utf-8")], target
        )
    else:
        response = Response(200, [("content-type", "application/octet-stream")], target)
    body = response.body.encode() if isinstance(response.body, str) else response.body
    pairs = cast("tuple[tuple[str, str], ...]", response.headers)
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
    if not any(k in (b"content-length", b"transfer-encoding") for k, _ in headers):
        headers.append((b"content-length", str(len(body)).encode()))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@dataclass(frozen=True)
class _CustomRoute:
    """A route added with `TestServer.add_route`."""

    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    app: ASGIApp


#: ``{name}`` in a route template: one path segment; ``{name:path}``: the rest of the
#: path, slashes included.
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def _template_pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    names: set[str] = set()
    pos = 0
    for match in _PARAM.finditer(template):
        name = match.group(1)
        if name in names:
            raise ValueError(f"route {template!r} names {{{name}}} twice")
        names.add(name)
        parts.append(re.escape(template[pos : match.start()]))
        parts.append(f"(?P<{name}>.+)" if match.group(2) else f"(?P<{name}>[^/]+)")
        pos = match.end()
    rest = template[pos:]
    if "{" in rest or "}" in rest:
        raise ValueError(
            f"route {template!r}: a parameter is written {{name}} (one path segment) "
            "or {name:path} (the rest of the path)"
        )
    parts.append(re.escape(rest))
    return re.compile("".join(parts))


def _find_route(
    routes: Sequence[_CustomRoute], method: str, path: str
) -> tuple[ASGIApp, dict[str, str]] | list[str]:
    """The app for ``method path`` and its path parameters; else the methods the
    routes matching the path allow (empty if none matches the path).

    Exact paths come before templates; among equals, the route added last wins.
    """
    allowed: list[str] = []
    ordered = sorted(reversed(routes), key=lambda r: bool(_PARAM.search(r.template)))
    for route in ordered:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        if route.methods is None or method in route.methods:
            return route.app, match.groupdict()
        allowed += sorted(m for m in route.methods if m not in allowed)
    return allowed


class _App:
    """The ASGI app hypercorn serves: logs, dispatches, turns exceptions into 500s."""

    def __init__(self, server: TestServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rpartition(".")[2]  # startup / shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        server = self.server
        if scope["type"] == "websocket":
            # A WebSocket handshake reaches a custom route of its path (an ASGI
            # websocket app); without one, hypercorn refuses it.
            found = _find_route(server._routes, "GET", scope["path"])
            if isinstance(found, tuple):
                app, params = found
                await app({**scope, "path_params": params}, receive, send)
            return
        if scope["type"] != "http":
            return
        generation = server._generation
        ex = _Exchange(server, scope, receive, send)
        try:
            found = _find_route(server._routes, scope["method"], scope["path"])
            if isinstance(found, tuple):
                custom, params = found
                scope = {**scope, "path_params": params}
                await custom(scope, ex.receive, ex.send)
            else:
                for route in _BUILTINS:
                    match = route.pattern.fullmatch(scope["path"])
                    if match:
                        await route.handler(ex, match)
                        break
                else:
                    if found:  # routes for the path, none for this method
                        # Read the body first: over HTTP/2, hypercorn drops the whole
                        # connection when DATA arrives for a stream already answered
                        # (KeyError in its h2 protocol, hypercorn 0.17/0.18).
                        await ex.read_body()
                        allow = ", ".join(found)
                        text = f"{ex.log.method} {ex.log.path}: allowed: {allow}\n"
                        await ex.respond(405, text, [("allow", allow)])
                    else:
                        text = _not_found_text(ex.log.method, ex.log.path)
                        await ex.respond(404, text)
        except Exception as error:
            if ex.connection_error is not None:
                logger.debug("connection lost under a route", exc_info=error)
                return
            route_error = RouteError(ex.log.method, ex.log.path, error)
            if generation == server._generation:
                server._add_error(route_error)
                logger.error("%s", route_error, exc_info=error)
            else:  # the test that made the request is over: not another test's failure
                server.internal_errors.append(route_error)
                logger.error(
                    "%s (request of an earlier test)", route_error, exc_info=error
                )
            if not ex.started:
                text = "".join(traceback.format_exception_only(type(error), error))
                await ex.respond(500, f"route handler raised:\n{text}")
            elif not ex.finished:
                await ex.abort()
        finally:
            ex.close()


# -- connection tracking -------------------------------------------------------------


class _Live:
    """A connection the server holds open: its log entry and transport."""

    def __init__(self, log: ConnectionLog, transport: asyncio.BaseTransport) -> None:
        self.log = log
        self.transport = cast(asyncio.Transport, transport)
        self._pending_100 = False
        self._current: RequestLog | None = None
        #: Requests in flight on it.
        self.exchanges: set[_Exchange] = set()

    def begin(self, exchange: _Exchange) -> None:
        request = exchange.log
        self.exchanges.add(exchange)
        if request.http_version == "2":  # h2c: HTTP/2 without TLS, no ALPN to tell
            self.log.protocol = "HTTP/2"
        request.sent_100_continue = self._pending_100
        self._pending_100 = False
        self._current = request

    def end(self, exchange: _Exchange) -> None:
        self.exchanges.discard(exchange)
        if self._current is exchange.log:
            self._current = None

    def wrote(self, data: bytes | bytearray | memoryview) -> None:
        # hypercorn writes each HTTP/1.1 head in one call; a 100 is one it sends itself.
        if self.log.protocol == "HTTP/1.1" and bytes(data[:13]) == b"HTTP/1.1 100 ":
            if self._current is not None and self._current.status is None:
                self._current.sent_100_continue = True
            else:
                self._pending_100 = True


class _Tracker:
    """Keeps `_Live` records for open connections, keyed by the client's address."""

    def __init__(self, log: ServerLog) -> None:
        self.log = log
        self._ids = itertools.count(1)
        self._live: dict[tuple[str, int], _Live] = {}

    def opened(self, transport: asyncio.BaseTransport) -> _Live:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        conn = ConnectionLog(
            id=next(self._ids),
            client_addr=(peer[0], peer[1]),
            server_addr=(local[0], local[1]),
            protocol="HTTP/2" if alpn == "h2" else "HTTP/1.1",
            tls_version=ssl_object.version() if ssl_object is not None else None,
            alpn=alpn,
            opened_at=time.monotonic(),
        )
        live = _Live(conn, transport)
        self._live[conn.client_addr] = live
        self.log._add_connection(conn)
        return live

    def closed(self, live: _Live) -> None:
        live.log.closed_at = time.monotonic()
        if self._live.get(live.log.client_addr) is live:
            del self._live[live.log.client_addr]
        self.log._changed()

    def find(self, client: Sequence[Any]) -> _Live | None:
        return self._live.get((client[0], client[1]))

    def abort(self, *, idle_only: bool) -> None:
        """Close connections now, without TLS ``close_notify`` (stop must not wait)."""
        for live in list(self._live.values()):
            if not (idle_only and live.exchanges):
                live.transport.abort()

    def finishing(self) -> bool:
        """A handler has handed over its whole response but not returned yet."""
        return any(ex.finished for live in self._live.values() for ex in live.exchanges)


class _TapTransport:
    """The transport as hypercorn sees it: writes are shown to `_Live.wrote` first."""

    def __init__(self, transport: asyncio.BaseTransport, live: _Live) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)
        self._live = live

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._live.wrote(data)
        self._transport.write(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _TrackingProtocol(asyncio.Protocol):
    """Wraps the protocol asyncio.start_server made, to see connections open, close."""

    def __init__(self, inner: asyncio.Protocol, tracker: _Tracker) -> None:
        self._inner = inner
        self._tracker = tracker
        self._live: _Live | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._live = self._tracker.opened(transport)
        tap = cast(asyncio.BaseTransport, _TapTransport(transport, self._live))
        self._inner.connection_made(tap)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._live is not None:
            self._tracker.closed(self._live)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _ServerLoop(asyncio.SelectorEventLoop):
    """The server thread's event loop: the seam between asyncio and hypercorn.

    hypercorn calls ``asyncio.start_server`` with no way to pass a protocol wrapper or
    ``ssl_shutdown_timeout``; its `serve` runs on whatever loop is current, so this
    loop adds both to every server it creates, and reports when all are listening.
    """

    def __init__(self, tracker: _Tracker, on_listening: Callable[[], None]) -> None:
        super().__init__()
        self._tracker = tracker
        self._on_listening = on_listening

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *args: Any,
        **kwargs: Any,
    ) -> asyncio.Server:
        if kwargs.get("ssl") is not None and sys.version_info >= (3, 11):
            kwargs["ssl_shutdown_timeout"] = SSL_SHUTDOWN_TIMEOUT

        def tracking_factory() -> asyncio.BaseProtocol:
            inner = cast(asyncio.Protocol, protocol_factory())
            return _TrackingProtocol(inner, self._tracker)

        server = await super().create_server(tracking_factory, *args, **kwargs)
        self._on_listening()
        return server


# -- lifecycle -----------------------------------------------------------------------


def _loopback_addresses(host: str) -> list[tuple[socket.AddressFamily, str]]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        infos = []
    found: list[tuple[socket.AddressFamily, str]] = []
    for family, _, _, _, sockaddr in infos:
        address = str(sockaddr[0])
        if (
            family in (socket.AF_INET, socket.AF_INET6)
            and (family, address) not in found
        ):
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(address.partition("%")[0]).is_loopback:
                    found.append((family, address))
    return found or [(socket.AF_INET, "127.0.0.1")]


def bind_loopback(
    host: str = "localhost", *, attempts: int = 20
) -> list[socket.socket]:
    """Listening sockets on every loopback address `host` resolves to, all one port.

    The first is bound to port 0 (the kernel picks a free port, so parallel test
    workers never collide), the others to the same port; if that port is taken on
    another address, start again. Addresses the machine cannot bind (IPv6 off) are
    skipped. The sockets are listening already, so clients may connect at once.
    """
    addresses = _loopback_addresses(host)
    for attempt in range(attempts):
        sockets: list[socket.socket] = []
        port = 0
        try:
            for family, address in addresses:
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((address, port))
                except OSError as error:
                    sock.close()
                    unusable = error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
                    if unusable and (sockets or address != addresses[-1][1]):
                        continue
                    raise
                sock.listen(128)
                port = sock.getsockname()[1]
                sockets.append(sock)
            if sockets:
                return sockets
        except OSError as error:
            for sock in sockets:
                sock.close()
            if error.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
    raise OSError(f"could not bind a loopback port for {host}")  # pragma: no cover


class _Endpoint:
    """What every local server offers a test: URLs and httpx clients that trust it."""

    host: str
    port: int
    tls: bool

    def __init__(self, *, tls: bool, ca: trustme.CA | None) -> None:
        self.host = "localhost"
        self.port = 0
        self.tls = tls
        self._ca = ca

    @property
    def ca(self) -> trustme.CA:
        """The trustme CA that signed the server's certificate."""
        if self._ca is None:
            self._ca = new_ca()
        return self._ca

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/") -> str:
        """``https://localhost:PORT/path`` (``http://`` without TLS)."""
        if not path.startswith("/"):
            path = "/" + path
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        """A new client context trusting `ca` (only), hostname checks on."""
        return client_ssl_context(self.ca)

    #: The library of `client` / `async_client` when none is named: None means
    #: httpx, or httpx2 where httpx is not installed.
    default_lib: str | None = None

    def client(self, lib: str | None = None, **httpx_kwargs: Any) -> httpx.Client:
        """An httpx ``Client`` for this server; any httpx argument passes through.

        ``lib="httpx2"`` gives an ``httpx2.Client`` instead (same arguments).
        Defaults: ``verify=self.ssl_context()``, ``trust_env=False`` (proxy variables
        in the environment never redirect test traffic), ``base_url`` this server.
        """
        module = client_library(lib or self.default_lib)
        client: httpx.Client = module.Client(**self._client_kwargs(httpx_kwargs))
        return client

    def async_client(
        self, lib: str | None = None, **httpx_kwargs: Any
    ) -> httpx.AsyncClient:
        """An ``AsyncClient`` for this server (``lib`` and defaults as `client`)."""
        module = client_library(lib or self.default_lib)
        client: httpx.AsyncClient = module.AsyncClient(
            **self._client_kwargs(httpx_kwargs)
        )
        return client

    # -- clients of the other libraries ------------------------------------------

    def aiohttp_session(self, **session_kwargs: Any) -> aiohttp.ClientSession:
        """An ``aiohttp.ClientSession`` for this server; call it inside the event loop.

        aiohttp's own defaults, except: a ``TCPConnector(ssl=self.ssl_context())``
        (TLS: trusts this server's CA only), ``trust_env=False``, ``base_url`` this
        server. Any `aiohttp.ClientSession` argument passes through (a
        ``connector`` of yours replaces ours: give it ``ssl=server.ssl_context()``).

        Example::

            async with httptrace_server.aiohttp_session() as session:
                async with session.get("/") as response:
                    assert response.status == 200
        """
        from .aiohttp_trace._session import session_for

        context = self.ssl_context() if self.tls else None
        return session_for(self.url("/"), context, session_kwargs)

    def ca_bundle(self) -> str:
        """The path of a PEM file with `ca` (for ``requests``' ``verify=``); removed
        at the end of the session."""
        from .urllib3_trace._clients import ca_bundle

        return ca_bundle(self.ca)

    def requests_session(self, **session_attrs: Any) -> requests.Session:
        """A `requests.Session` that trusts `ca` (``verify`` is `ca_bundle`) and
        ignores the environment (``trust_env=False``); each keyword sets that
        attribute of the session (``headers=``, ``max_redirects=``...)."""
        from .urllib3_trace._clients import requests_session

        return requests_session(self.ca if self.tls else None, **session_attrs)

    def urllib3_pool_manager(self, **pool_kwargs: Any) -> urllib3.PoolManager:
        """A `urllib3.PoolManager` that trusts `ca` (``ca_certs``); any urllib3
        argument passes through (``maxsize=``, ``block=``, ``retries=``...)."""
        from .urllib3_trace._clients import pool_manager

        return pool_manager(self.ca if self.tls else None, **pool_kwargs)

    def _client_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("trust_env", False)
        kwargs.setdefault("base_url", f"{self.scheme}://{self.host}:{self.port}")
        if self.tls:
            kwargs.setdefault("verify", self.ssl_context())
        return kwargs


HTTPX_LIBRARIES = ("httpx", "httpx2")


def client_library(lib: str | None) -> Any:
    """The module of an httpx-like client library: ``"httpx"`` or ``"httpx2"``
    (None: httpx, or httpx2 where httpx is not installed)."""
    import importlib
    import importlib.util

    if lib is None:
        lib = "httpx" if importlib.util.find_spec("httpx") is not None else "httpx2"
    if lib not in HTTPX_LIBRARIES:
        raise ValueError(
            f"lib must be one of {', '.join(map(repr, HTTPX_LIBRARIES))}, not {lib!r}"
        )
    return importlib.import_module(lib)


@functools.cache
def _config_class() -> Callable[[ssl.SSLContext | None], Config]:
    from hypercorn.config import Config

    class _Config(Config):
        """hypercorn's config with a TLS context we built (no files, no trust store)."""

        def __init__(self, context: ssl.SSLContext | None) -> None:
            self._context = context

        @property
        def ssl_enabled(self) -> bool:
            return self._context is not None

        def create_ssl_context(self) -> ssl.SSLContext | None:
            return self._context

    return _Config


class TestServer(_Endpoint):
    """A running hypercorn server on loopback; make one with `start_server`.

    Example::

        with start_server() as srv:
            srv.add_route("/teapot", Response(418, body="short and stout"))
            with srv.client() as client:
                assert client.get("/teapot").status_code == 418
            assert srv.log.requests[-1].path == "/teapot"
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, *, tls: bool = True, ca: trustme.CA | None = None) -> None:
        super().__init__(tls=tls, ca=ca)
        self.log = ServerLog()
        #: Errors of the server itself (not of a route), recorded rather than raised
        #: into whatever test runs: e.g. the `ssl.SSLError` hypercorn's `serve` may
        #: raise at shutdown.
        self.internal_errors: list[BaseException] = []
        self._tracker = _Tracker(self.log)
        self._routes: list[_CustomRoute] = []
        self._errors: list[RouteError] = []
        self._errors_lock = threading.Lock()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._loop: _ServerLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._listening = threading.Event()

    # -- routes and per-test state

    def add_route(
        self,
        path: str,
        app_or_response: RouteTarget,
        *,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Serve `path` with an ASGI app or a canned response.

        `path` is matched against the whole request path (no query string). It may
        hold parameters: ``{name}`` matches one path segment, ``{name:path}`` the rest
        of the path; an app finds them in ``scope["path_params"]`` (a dict of str).
        `methods` (e.g. ``["GET", "HEAD"]``) limits the route to those methods; a
        request with another method gets ``405`` with an ``Allow`` header, unless
        another route takes it. Exact paths win over templates; among equals, the
        route added last. Example::

            async def item(scope, receive, send):
                body = f"item {scope['path_params']['id']}".encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})

            srv.add_route("/items/{id}", item, methods=["GET"])
            srv.add_route("/items/{id}", Response(204), methods=["DELETE"])

        `app_or_response` is an ASGI callable, a `Response`, or a ``str`` / ``bytes``
        body for a 200. It shadows a built-in route of the same path. Removed by
        `reset` (the pytest fixture does so after each test). Exceptions the app raises
        are answered with 500 and reported by `check`.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(
                f"route path must be a str starting with '/', got {path!r}"
            )
        pattern = _template_pattern(path)
        allowed: frozenset[str] | None = None
        if methods is not None:
            if isinstance(methods, str):
                raise TypeError(
                    f"methods takes a list of methods, e.g. [{methods!r}], not a str"
                )
            allowed = frozenset(str(m).upper() for m in methods)
            if not allowed:
                raise ValueError("methods is empty: give at least one, or None for all")
        app: ASGIApp
        if isinstance(app_or_response, (str, bytes, Response)):
            app = _canned(app_or_response)
        elif callable(app_or_response):
            app = app_or_response
        else:
            raise TypeError(
                "add_route() takes an ASGI app, a Response, str or bytes; "
                f"got {app_or_response!r}"
            )
        route = _CustomRoute(path, pattern, allowed, app)
        self._routes = [
            r for r in self._routes if (r.template, r.methods) != (path, allowed)
        ] + [route]

    def reset(self) -> None:
        """Back to a fresh state: clear `log`, custom routes and unreported errors."""
        self._generation += 1
        self._routes.clear()
        self.log.clear()
        with self._errors_lock:
            self._errors.clear()

    def pop_errors(self) -> list[RouteError]:
        """Take the route errors seen so far (for a test that provokes them)."""
        with self._errors_lock:
            errors, self._errors = self._errors, []
        return errors

    def check(self) -> None:
        """Raise `RouteError` for route handlers that raised since the last check.

        The first error is raised, chained to the handler's exception; a second one and
        more are listed in its message.
        """
        errors = self.pop_errors()
        if not errors:
            return
        first = errors[0]
        if len(errors) > 1:
            more = "\n".join(f"  {e}" for e in errors[1:])
            first.args = (f"{first.args[0]}\nand {len(errors) - 1} more:\n{more}",)
        raise first from first.error

    def _add_error(self, error: RouteError) -> None:
        with self._errors_lock:
            self._errors.append(error)

    # -- lifecycle

    def _start(self) -> None:
        sockets = bind_loopback(self.host)
        self.port = sockets[0].getsockname()[1]
        config = _config_class()(server_ssl_context(self.ca) if self.tls else None)
        config.bind = [f"fd://{sock.detach()}" for sock in sockets]
        config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
        config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
        config.graceful_timeout = GRACEFUL_TIMEOUT
        config.errorlog = logger
        config.accesslog = None
        remaining = len(sockets)
        serving = False

        def on_listening() -> None:
            nonlocal remaining, serving
            remaining -= 1
            if remaining == 0:
                serving = True
                self._listening.set()

        self._loop = _ServerLoop(self._tracker, on_listening)
        self._loop.set_exception_handler(self._loop_exception)
        self._thread = threading.Thread(
            target=self._run, args=(config,), name=f"httptrace-server-{self.port}"
        )
        self._thread.daemon = True
        self._thread.start()
        # `_run` also sets the event when it ends, so a server that fails to start
        # does not keep us waiting.
        if not self._listening.wait(THREAD_TIMEOUT) or not serving:
            self._thread.join(THREAD_TIMEOUT)
            self._thread = None
            error = self.internal_errors[-1] if self.internal_errors else None
            raise RuntimeError(f"the test server did not start: {error!r}") from error

    def _run(self, config: Config) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.run_until_complete(self._serve(config))
        except BaseException as error:  # recorded; _start reports it
            self.internal_errors.append(error)
        finally:
            try:
                _cancel_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                self._listening.set()

    async def _serve(self, config: Config) -> None:
        from hypercorn.asyncio import serve

        self._shutdown = asyncio.Event()
        try:
            await serve(
                cast(Any, _App(self)),
                config,
                shutdown_trigger=self._shutdown.wait,
                mode="asgi",
            )
        except ssl.SSLError as error:  # seen from serve() at shutdown; never a test's
            self.internal_errors.append(error)
        finally:
            # Whatever hypercorn did not close in time: close now, so no transport is
            # left for the garbage collector to warn about.
            self._tracker.abort(idle_only=False)
            for _ in range(3):
                await asyncio.sleep(0)

    def _loop_exception(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        error = context.get("exception")
        if error is not None:
            self.internal_errors.append(error)
        # Expected: a client that does not trust the CA or hangs up mid-handshake
        # (SSLError); a peer that never answers close_notify (TimeoutError, "SSL
        # shutdown timed out"); and, on Python 3.11, asyncio's stream callback calling
        # `task.exception()` on a connection task cancelled at shutdown.
        expected = (ssl.SSLError, TimeoutError, asyncio.CancelledError)
        level = logging.DEBUG if isinstance(error, expected) else logging.ERROR
        logger.log(
            level, "server event loop: %s", context.get("message"), exc_info=error
        )

    def stop(self) -> None:
        """Stop serving and wait for the thread; no socket or thread is left behind.

        Idle connections are dropped at once (a client holding one sees the connection
        closed, without TLS ``close_notify``); requests in flight get `GRACEFUL_TIMEOUT`
        seconds, then are cancelled (their clients get a 500 or a closed connection).
        Calling it again does nothing.
        """
        thread, loop, shutdown = self._thread, self._loop, self._shutdown
        if thread is None or loop is None:
            return

        async def begin_shutdown() -> None:
            # The client may have its response while the handler has yet to return
            # (HTTP/2 writes from another task): a few loop turns, so that such a
            # connection counts as idle.
            for _ in range(100):
                if not self._tracker.finishing():
                    break
                await asyncio.sleep(0)
            self._tracker.abort(idle_only=True)
            if shutdown is not None:
                shutdown.set()

        def start_shutdown() -> None:
            self._shutdown_task = loop.create_task(begin_shutdown())

        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(start_shutdown)
        thread.join(THREAD_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the test server did not stop within {THREAD_TIMEOUT}s")
        self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<TestServer {self.scheme}://{self.host}:{self.port} {state}>"


def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def start_server(*, tls: bool = True, ca: trustme.CA | None = None) -> TestServer:
    """Start a `TestServer` in a background thread and return it once it listens.

    `tls` (default True) serves HTTPS with HTTP/2 and HTTP/1.1 by ALPN; False serves
    plain HTTP/1.1 (and HTTP/2 by prior knowledge). `ca` signs the certificate (a new
    trustme CA if None). Use it as a context manager, or call `TestServer.stop`.
    """
    server = TestServer(tls=tls, ca=ca)
    server._start()
    return server
