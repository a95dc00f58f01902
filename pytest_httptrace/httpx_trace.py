"""How httpx and httpcore drive the `ClientTrace` hooks. Every patch lives here.

Written for httpx 0.27/0.28 and httpcore 1.0.x (checked at `install`). httpx has no
seam for most of what Go's httptrace reports: its transport cannot be given a network
backend, httpcore's ``trace`` extension has no pool checkout, no DNS, no 1xx and no
connection identity. So while a trace is in effect we patch, at class level, and
restore the exact original functions at `uninstall`:

=============================================  ======================================
patched                                        hooks it drives
=============================================  ======================================
``httpx.Client.send`` (+ async)                 marks when "the call" returns
``httpx.HTTPTransport.handle_request`` (+async)  ``get_conn``; installs the per-request
                                               httpcore ``trace`` callback, which
                                               drives ``got_conn``, ``wrote_*``,
                                               ``tls_*`` and ``put_idle_conn``
``httpcore.HTTPConnection.handle_request``     binds the request to its connection
``SyncBackend/AnyIOBackend.connect_tcp``       ``dns_*``, ``connect_*`` (one per
                                               address tried)
``SyncStream/AnyIOStream.read``                ``got_first_response_byte`` (HTTP/1.1)
``HTTP11Connection._receive_event``            ``got_1xx_response``,
                                               ``got_100_continue`` (HTTP/1.1)
``HTTP2Connection._read_incoming_data``        first byte and 1xx for HTTP/2, routed
                                               by stream id
``HTTP11Connection/HTTP2Connection.close``     connection closed time
=============================================  ======================================

None of these change what the client sends or receives: they observe, then call the
original. Hooks never raise into httpcore (see `TracedRequest.fire`), because an
exception inside httpcore's bookkeeping leaves pooled connections stuck ACTIVE.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
import time
import weakref
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import anyio
import h2.errors
import h2.events
import h11
import httpcore
import httpx
from httpcore._async.connection import AsyncHTTPConnection
from httpcore._async.http2 import AsyncHTTP2Connection
from httpcore._async.http11 import AsyncHTTP11Connection
from httpcore._backends.anyio import AnyIOBackend, AnyIOStream
from httpcore._backends.sync import SyncBackend, SyncStream
from httpcore._sync.connection import HTTPConnection
from httpcore._sync.http2 import HTTP2Connection
from httpcore._sync.http11 import HTTP11Connection

from .trace import (
    DNSDoneInfo,
    DNSStartInfo,
    GotConnInfo,
    TLSConnectionState,
    TracedConnection,
    TracedRequest,
    WroteRequestInfo,
    current_chain,
)

__all__ = [
    "RequestAbortedByHook",
    "install",
    "uninstall",
    "wait_for_100_continue",
]

#: Versions this module was written and tested for (major.minor prefixes).
SUPPORTED = {"httpx": ("0.27.", "0.28."), "httpcore": ("1.0.",)}


class RequestAbortedByHook(httpx.TransportError):
    """The request was aborted because a ``got_1xx_response`` hook raised (as in Go).

    The hook's exception is the ``__cause__``. The connection is closed (HTTP/1.1) or
    the stream reset (HTTP/2); it is never returned to the pool.
    """


# -- per-context state ----------------------------------------------------------------

#: The request being sent by this context (set by the transport wrapper).
_CURRENT: contextvars.ContextVar[TracedRequest | None] = contextvars.ContextVar(
    "pytest_httptrace_current", default=None
)
#: The requests started by the current ``Client.send`` call (redirects, retries).
_CALL: contextvars.ContextVar[list[TracedRequest] | None] = contextvars.ContextVar(
    "pytest_httptrace_call", default=None
)

_lock = threading.Lock()
_conn_ids = iter(range(1, 1 << 62))
#: httpcore HTTPConnection (outer) or HTTP11/HTTP2 connection (inner) -> its record.
_CONNS: weakref.WeakKeyDictionary[object, TracedConnection] = (
    weakref.WeakKeyDictionary()
)
#: HTTP/2 connection (inner) -> {stream id: request}.
_H2_STREAMS: weakref.WeakKeyDictionary[object, dict[int, TracedRequest]] = (
    weakref.WeakKeyDictionary()
)


#: Network stream -> bytes read ahead while waiting for 100 Continue, served to
#: httpcore's next reads before the socket (so h11 parses them as usual).
_PUSHBACK: weakref.WeakKeyDictionary[object, bytes] = weakref.WeakKeyDictionary()

#: The opt-in waiting mode: seconds to wait for 100 Continue, or None (off).
_WAIT_FOR_CONTINUE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pytest_httptrace_wait_for_continue", default=None
)
_wait_default: float | None = None


def _now() -> float:
    return time.monotonic()


def _connection_record(conn: object) -> TracedConnection:
    with _lock:
        record = _CONNS.get(conn)
        if record is None:
            record = TracedConnection(id=next(_conn_ids), conn=conn)
            _CONNS[conn] = record
        return record


# -- the call and the transport ------------------------------------------------------


def _proxy_origin(transport: Any) -> Any:
    """The proxy's origin if ``transport`` sends through a proxy, else None."""
    url = getattr(getattr(transport, "_pool", None), "_proxy_url", None)
    return None if url is None else url.origin


def _start_request(transport: Any, request: httpx.Request) -> TracedRequest | None:
    extra = request.extensions.get("client_trace")
    chain = current_chain(extra)
    if not chain:
        return None
    st = TracedRequest(method=request.method, url=str(request.url), chain=chain)
    call = _CALL.get()
    if call is not None:
        call.append(st)
    proxy = _proxy_origin(transport)
    if proxy is not None:
        # Go reports the first hop. Through a proxy only get_conn and the proxy's
        # DNS/connect are observed: httpcore runs the tunnel (CONNECT) and the
        # target's TLS with the caller's extensions, which would mix their events
        # into this request's. See the support matrix.
        st.flags.add("proxied")
        host, port = proxy.host.decode("ascii"), proxy.port
    else:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme in ("https", "wss") else 80)
    if ":" in host:
        host = f"[{host}]"
    st.fire("get_conn", f"{host}:{port}")
    return st


def _finish_transport(st: TracedRequest, response: httpx.Response | None) -> None:
    if response is not None:
        st.status = response.status_code
    if _CALL.get() is None:
        st.returned_at = _now()


def _transport_error(
    st: TracedRequest, request: httpx.Request, exc: BaseException
) -> BaseException:
    """The exception the call raises: a got_1xx_response abort becomes an httpx error
    caused by the hook's exception."""
    abort = st.abort
    if abort is not None and not isinstance(exc, RequestAbortedByHook):
        exc = RequestAbortedByHook(
            f"request aborted: the got_1xx_response hook raised {abort!r}",
            request=request,
        )
    st.error = exc
    if _CALL.get() is None:
        st.returned_at = _now()
    return exc


def _with_callback(request: httpx.Request, callback: Any) -> dict[str, Any]:
    original = request.extensions
    request.extensions = {**original, "trace": callback}
    return original


def _sync_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
        st = _start_request(self, request)
        if st is None:
            return orig(self, request)  # type: ignore[no-any-return]
        user_cb = request.extensions.get("trace")
        if "proxied" in st.flags:
            return _proxied(st, request, lambda: orig(self, request))

        def callback(name: str, info: dict[str, Any]) -> None:
            _on_httpcore_event(st, name, info)
            if "hold_body" in st.flags:
                _wait_for_continue(st, st.source["request"])
            if user_cb is not None:
                user_cb(name, info)

        token = _CURRENT.set(st)
        original = _with_callback(request, callback)
        try:
            response = orig(self, request)
        except BaseException as exc:
            err = _transport_error(st, request, exc)
            if err is exc:
                raise
            raise err from st.abort
        finally:
            request.extensions = original
            _CURRENT.reset(token)
        _finish_transport(st, response)
        if _CALL.get() is None:
            _raise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return handle_request


def _async_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
        st = _start_request(self, request)
        if st is None:
            return await orig(self, request)  # type: ignore[no-any-return]
        user_cb = request.extensions.get("trace")
        if "proxied" in st.flags:
            token = _CURRENT.set(st)
            try:
                response = await orig(self, request)
            except BaseException as exc:
                st.error = exc
                raise
            finally:
                _CURRENT.reset(token)
            _finish_transport(st, response)
            return response  # type: ignore[no-any-return]

        async def callback(name: str, info: dict[str, Any]) -> None:
            _on_httpcore_event(st, name, info)
            if "hold_body" in st.flags:
                await _await_continue(st, st.source["request"])
            if user_cb is not None:
                await user_cb(name, info)

        token = _CURRENT.set(st)
        original = _with_callback(request, callback)
        try:
            response = await orig(self, request)
        except BaseException as exc:
            err = _transport_error(st, request, exc)
            if err is exc:
                raise
            raise err from st.abort
        finally:
            request.extensions = original
            _CURRENT.reset(token)
        _finish_transport(st, response)
        if _CALL.get() is None:
            await _araise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return handle_async_request


def _proxied(
    st: TracedRequest, request: httpx.Request, send: Callable[[], Any]
) -> httpx.Response:
    token = _CURRENT.set(st)  # the proxy's DNS and connect hooks
    try:
        response: httpx.Response = send()
    except BaseException as exc:
        st.error = exc
        raise
    finally:
        _CURRENT.reset(token)
    _finish_transport(st, response)
    return response


def _raise_hook_error(st: TracedRequest, response: httpx.Response | None) -> None:
    err = st.take_hook_error()
    if err is not None:
        if response is not None:
            response.close()
        raise err


async def _araise_hook_error(
    st: TracedRequest, response: httpx.Response | None
) -> None:
    err = st.take_hook_error()
    if err is not None:
        if response is not None:
            await response.aclose()
        raise err


def _end_call(call: list[TracedRequest], error: BaseException | None) -> None:
    now = _now()
    for st in call:
        st.returned_at = now
    if error is not None and call and call[-1].error is None:
        call[-1].error = error


def _sync_send(orig: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if _CALL.get() is not None:  # a send() inside a send() (event hooks): one call
            return orig(self, request, **kwargs)  # type: ignore[no-any-return]
        call: list[TracedRequest] = []
        token = _CALL.set(call)
        try:
            response = orig(self, request, **kwargs)
        except BaseException as exc:
            _end_call(call, exc)
            raise
        finally:
            _CALL.reset(token)
        _end_call(call, None)
        for st in call:
            _raise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return send


def _async_send(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def send(self: Any, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if _CALL.get() is not None:
            return await orig(self, request, **kwargs)  # type: ignore[no-any-return]
        call: list[TracedRequest] = []
        token = _CALL.set(call)
        try:
            response = await orig(self, request, **kwargs)
        except BaseException as exc:
            _end_call(call, exc)
            raise
        finally:
            _CALL.reset(token)
        _end_call(call, None)
        for st in call:
            await _araise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return send


# -- httpcore's trace events ---------------------------------------------------------


def _on_httpcore_event(st: TracedRequest, name: str, info: dict[str, Any]) -> None:
    """Turn one httpcore ``trace`` event of this request into Go hooks."""
    _, _, event = name.partition(".")
    if event == "start_tls.started":
        st.fire("tls_handshake_start")
    elif event == "start_tls.complete":
        state = _tls_state(info.get("return_value"))
        if st.connection is not None:
            st.connection.tls = state
        st.fire("tls_handshake_done", state, None)
    elif event == "start_tls.failed":
        st.fire("tls_handshake_done", TLSConnectionState(), info.get("exception"))
    elif event in ("send_request_headers.started", "send_connection_init.started"):
        _got_conn(st)
        if event == "send_request_headers.started":
            _request_headers_started(st, name, info)
    elif event == "send_request_headers.complete":
        for key, value in st.pending_headers:
            st.fire("wrote_header_field", key, [value])
        st.pending_headers = []
        st.fire("wrote_headers")
        if name.startswith("http2") and "h2_body" in st.flags:
            _h2_written(st)
        core_request = st.source.get("request")
        if name.startswith("http11") and _should_wait(st, core_request):
            st.flags.add("hold_body")
    elif event in ("send_request_headers.failed", "send_request_body.failed"):
        if "wrote_request" not in st.flags:
            st.flags.add("wrote_request")
            # A body we withheld (final response before 100 Continue) is not a
            # failure: Go reports WroteRequest with no error then.
            err = None if "body_withheld" in st.flags else info.get("exception")
            st.fire("wrote_request", WroteRequestInfo(err=err))
        if name.startswith("http2"):
            _h2_written(st)
    elif event == "send_request_body.complete":
        if "wrote_request" not in st.flags:
            st.flags.add("wrote_request")
            st.fire("wrote_request", WroteRequestInfo(err=None))
        if name.startswith("http2"):
            _h2_written(st)
    elif event == "receive_response_headers.started":
        if name.startswith("http11"):
            st.flags.add("await_first_byte")
    elif event == "receive_response_headers.complete":
        _first_byte(st)  # normally already fired by the read tap
    elif event in ("receive_response_body.failed", "receive_response_headers.failed"):
        exc = info.get("exception")
        # A body iteration the caller abandoned (GeneratorExit) is no failure.
        if st.error is None and not isinstance(exc, GeneratorExit):
            st.error = exc
    elif event == "response_closed.complete":
        _response_closed(st, http11=name.startswith("http11"))


def _request_headers_started(
    st: TracedRequest, name: str, info: dict[str, Any]
) -> None:
    request = st.source["request"] = info["request"]
    headers: list[tuple[bytes, bytes]] = list(request.headers)
    if name.startswith("http2"):
        # What httpcore's HTTP/2 connection puts on the wire: pseudo-headers first,
        # names lowercased, no Host or Transfer-Encoding.
        authority = next((v for k, v in headers if k.lower() == b"host"), b"")
        headers = [
            (b":method", request.method),
            (b":authority", authority),
            (b":scheme", request.url.scheme),
            (b":path", request.url.target),
        ] + [
            (k.lower(), v)
            for k, v in headers
            if k.lower() not in (b"host", b"transfer-encoding")
        ]
        if any(
            k.lower() in (b"content-length", b"transfer-encoding") for k, _ in headers
        ):
            st.flags.add("h2_body")
        stream_id = info.get("stream_id")
        conn = st.connection
        inner = getattr(conn.conn, "_connection", None) if conn else None
        if stream_id is not None and inner is not None:
            with _lock:
                _H2_STREAMS.setdefault(inner, {})[stream_id] = st
    st.pending_headers = [
        (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
    ]
    if any(k.lower() == b"expect" and v.lower() == b"100-continue" for k, v in headers):
        st.flags.add("expect_continue")


def _got_conn(st: TracedRequest) -> None:
    conn = st.connection
    if conn is None or "conn_pending" not in st.flags:
        return
    st.flags.discard("conn_pending")
    st.flags.add("got_conn")
    now = _now()
    inner = getattr(conn.conn, "_connection", None)
    with _lock:
        # Go: the first request to take a connection gets reused=False, every later
        # one True; a connection already open when we bound to it (dialed before
        # tracing started, say) is reused whatever we counted.
        reused = "fresh" not in st.flags or conn.served > 0
        was_idle = reused and conn.active == 0
        idle_time = now - conn.idle_since if was_idle and conn.idle_since else 0.0
        conn.served += 1
        conn.active += 1
        if inner is not None and inner not in _CONNS:
            _CONNS[inner] = conn
            conn.protocol = (
                "HTTP/2"
                if isinstance(inner, (HTTP2Connection, AsyncHTTP2Connection))
                else "HTTP/1.1"
            )
    st.fire(
        "got_conn",
        GotConnInfo(
            conn=conn.conn, reused=reused, was_idle=was_idle, idle_time=idle_time
        ),
    )


def _response_closed(st: TracedRequest, *, http11: bool) -> None:
    if st.closed_at is not None:
        return
    now = st.closed_at = _now()
    conn = st.connection
    if conn is None or "got_conn" not in st.flags:
        return
    with _lock:
        conn.active = max(0, conn.active - 1)
        if conn.active == 0:
            conn.idle_since = now
    inner = getattr(conn.conn, "_connection", None)
    # Go calls PutIdleConn only when the connection really went back to the idle
    # pool: not for HTTP/2, not after "Connection: close" or a body closed early.
    if http11 and inner is not None and inner.is_idle():
        st.fire("put_idle_conn", None)


def _first_byte(st: TracedRequest) -> None:
    if "first_byte" not in st.flags:
        st.flags.add("first_byte")
        st.flags.discard("await_first_byte")
        st.fire("got_first_response_byte")


def _got_1xx(st: TracedRequest, code: int, headers: httpx.Headers) -> None:
    """Fire the hooks of one interim response; an exception from got_1xx_response
    propagates (the caller aborts the request)."""
    _first_byte(st)
    if code == 100 and "expect_continue" in st.flags and "got_100" not in st.flags:
        st.flags.add("got_100")
        st.fire("got_100_continue")
    try:
        st.fire_got_1xx(code, headers)
    except Exception as exc:
        st.abort = exc
        raise


def _tls_state(stream: Any) -> TLSConnectionState:
    ssl_object = None if stream is None else stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return TLSConnectionState()
    cipher = ssl_object.cipher()
    try:
        # The sync object is _ssl._SSLSocket: only the positional form works.
        cert = ssl_object.getpeercert(True)
    except ValueError:  # pragma: no cover - handshake not done
        cert = None
    return TLSConnectionState(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        negotiated_protocol=ssl_object.selected_alpn_protocol(),
        server_name=getattr(ssl_object, "server_hostname", None),
        peer_certificate=cert,
        handshake_complete=True,
    )


# -- the opt-in waiting mode for 100 Continue ---------------------------------------


def wait_for_100_continue(timeout: float = 1.0) -> _WaitMode:
    """Make httpx wait for ``100 Continue`` before sending a body (opt-in).

    **This changes what the client does on the wire** — stock httpx never waits. Use
    it to test a *server's* ``Expect: 100-continue`` handling with a client that
    behaves like Go's. Inside the block (sync or async, traced or not), an HTTP/1.1
    request with ``Expect: 100-continue`` and a body sends its headers, calls
    ``wait_100_continue``, then holds the body until a ``100`` arrives (body sent), a
    final response arrives (body never sent, connection closed afterwards), or
    ``timeout`` seconds pass (body sent, like Go's ``ExpectContinueTimeout``).
    Per request: ``extensions={"wait_for_100_continue": seconds}``. HTTP/2 requests
    are not held (their body is sent at once, as stock httpx does).

    Example::

        with wait_for_100_continue(timeout=0.5):
            client.post(url, content=b"x" * 10_000,
                        headers={"Expect": "100-continue"})
    """
    return _WaitMode(timeout)


class _WaitMode:
    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds: {timeout}")
        self._timeout = timeout
        self._token: contextvars.Token[float | None] | None = None

    def __enter__(self) -> None:
        from .trace import _acquire_sources

        _acquire_sources()
        self._token = _WAIT_FOR_CONTINUE.set(self._timeout)

    def __exit__(self, *exc_info: object) -> None:
        from .trace import _release_sources

        assert self._token is not None
        _WAIT_FOR_CONTINUE.reset(self._token)
        self._token = None
        _release_sources()

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


def set_wait_default(timeout: float | None) -> None:
    """Process-wide waiting mode (the pytest marker / ini use it); None turns it off."""
    global _wait_default
    _wait_default = timeout


def _wait_timeout(request: Any) -> float | None:
    value = request.extensions.get("wait_for_100_continue")
    if value is True:
        return 1.0
    if isinstance(value, (int, float)) and value:
        return float(value)
    if value is False:
        return None
    timeout = _WAIT_FOR_CONTINUE.get()
    return timeout if timeout is not None else _wait_default


def _should_wait(st: TracedRequest, request: Any) -> bool:
    if "expect_continue" not in st.flags or _wait_timeout(request) is None:
        return False
    for key, value in request.headers:
        k = key.lower()
        if k == b"transfer-encoding" or (k == b"content-length" and value != b"0"):
            return True
    return False


class _ContinueWaiter:
    """One held body: reads ahead, parses response heads, decides what to do.

    The two loops below (sync and async) only read; everything else is here.
    """

    def __init__(self, st: TracedRequest, request: Any, stream: Any, timeout: float):
        self.st, self.request, self.stream = st, request, stream
        self.deadline = _now() + timeout
        self.buffer = b""
        self.decision: str | None = None  # "send" or "withhold"
        st.fire("wait_100_continue")

    @classmethod
    def start(cls, st: TracedRequest, request: Any) -> _ContinueWaiter | None:
        timeout = _wait_timeout(request)
        stream = _network_stream(st)
        if stream is None or timeout is None:
            st.flags.discard("hold_body")
            return None
        return cls(st, request, stream, timeout)

    def remaining(self) -> float:
        return self.deadline - _now() if self.decision is None else 0.0

    def feed(self, data: bytes) -> None:
        """Take bytes read ahead (b"" at end of stream)."""
        if not data:
            self.decision = "send"  # the server closed: let httpcore find out
            return
        if not self.buffer:
            _first_byte(self.st)
        self.buffer += data
        while self.decision is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            parts = head[0].split(" ", 2)
            try:
                code = int(parts[1])
                fields = [line.split(":", 1) for line in head[1:]]
                headers = httpx.Headers([(k.strip(), v.strip()) for k, v in fields])
            except (IndexError, ValueError):
                self.decision = "send"  # malformed: h11 will raise a clear error
                return
            if not 100 <= code < 200 or code == 101:
                self.decision = "withhold"
                return
            self.buffer = self.buffer[end + 4 :]  # h11 never sees this interim head
            _got_1xx(self.st, code, headers)
            if code == 100:
                self.decision = "send"

    def finish(self, *, is_async: bool) -> None:
        """Hand the read-ahead back to h11; withhold the body if so decided."""
        self.st.flags.discard("hold_body")
        if self.buffer:
            _PUSHBACK[self.stream] = self.buffer
        if self.decision == "withhold":
            _withhold(self.st, self.request, is_async=is_async)


def _withhold(st: TracedRequest, request: Any, *, is_async: bool) -> None:
    st.flags.add("body_withheld")
    error = httpcore.WriteError(
        "body withheld: the server sent a final response before 100 Continue"
    )

    def refuse() -> Any:
        raise error
        yield b""  # pragma: no cover

    async def arefuse() -> Any:
        raise error
        yield b""  # pragma: no cover

    request.stream = arefuse() if is_async else refuse()


def _network_stream(st: TracedRequest) -> Any:
    """The request's stream if the waiting mode can hold its body: only sync and
    anyio streams, whose reads hand the read-ahead back to h11 (not trio's)."""
    conn = st.connection
    inner = getattr(conn.conn, "_connection", None) if conn else None
    stream = getattr(inner, "_network_stream", None)
    return stream if isinstance(stream, (SyncStream, AnyIOStream)) else None


def _wait_for_continue(st: TracedRequest, request: Any) -> None:
    waiter = _ContinueWaiter.start(st, request)
    if waiter is None:
        return
    try:
        while (remaining := waiter.remaining()) > 0:
            try:
                waiter.feed(waiter.stream.read(65536, remaining))
            except httpcore.ReadTimeout:
                break
    finally:
        waiter.finish(is_async=False)


async def _await_continue(st: TracedRequest, request: Any) -> None:
    waiter = _ContinueWaiter.start(st, request)
    if waiter is None:
        return
    try:
        while (remaining := waiter.remaining()) > 0:
            try:
                waiter.feed(await waiter.stream.read(65536, remaining))
            except httpcore.ReadTimeout:
                break
    finally:
        waiter.finish(is_async=True)


# -- connections ---------------------------------------------------------------------


def _bind_connection(conn: object) -> None:
    st = _CURRENT.get()
    if st is not None and "proxied" not in st.flags:
        st.connection = _connection_record(conn)
        st.flags.add("conn_pending")
        if getattr(conn, "_connection", None) is None:
            st.flags.add("fresh")
        else:
            st.flags.discard("fresh")


def _sync_conn_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        _bind_connection(self)
        return orig(self, request)

    return handle_request


def _async_conn_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        _bind_connection(self)
        return await orig(self, request)

    return handle_async_request


def _mark_closed(conn: object) -> None:
    record = _CONNS.get(conn)
    if record is not None and record.closed_at is None:
        record.closed_at = _now()


def _sync_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    def close(self: Any) -> None:
        _mark_closed(self)
        orig(self)

    return close


def _async_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def aclose(self: Any) -> None:
        _mark_closed(self)
        await orig(self)

    return aclose


# -- DNS and dialing -----------------------------------------------------------------


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _unique_ips(infos: list[Any]) -> list[str]:
    ips: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in ips:
            ips.append(ip)
    return ips


def _connected(st: TracedRequest, stream: Any) -> None:
    conn = st.connection
    if conn is None:
        return
    conn.opened_at = _now()
    local = stream.get_extra_info("client_addr")
    peer = stream.get_extra_info("server_addr")
    conn.local_addr = _addr(str(local[0]), int(local[1])) if local else None
    conn.peer_addr = _addr(str(peer[0]), int(peer[1])) if peer else None


def _sync_connect_tcp(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connect_tcp(self: Any, host: str, port: int, *args: Any, **kw: Any) -> Any:
        st = _CURRENT.get()
        if st is None:
            return orig(self, host, port, *args, **kw)
        if _is_ip(host):
            ips = [host]
        else:
            st.fire("dns_start", DNSStartInfo(host=host))
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                raise httpcore.ConnectError(str(exc)) from exc
            ips = _unique_ips(infos)
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        last: BaseException | None = None
        for ip in ips:
            addr = _addr(ip, port)
            st.fire("connect_start", "tcp", addr)
            try:
                stream = orig(self, ip, port, *args, **kw)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                st.fire("connect_done", "tcp", addr, exc)
                last = exc
                continue
            st.fire("connect_done", "tcp", addr, None)
            _connected(st, stream)
            return stream
        assert last is not None
        raise last

    return connect_tcp


def _async_connect_tcp(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def connect_tcp(
        self: Any,
        host: str,
        port: int,
        timeout: float | None = None,
        *args: Any,
        **kw: Any,
    ) -> Any:
        st = _CURRENT.get()
        if st is None:
            return await orig(self, host, port, timeout, *args, **kw)
        # The overall dial timeout of the untraced path (anyio.fail_after around
        # the whole connect) applies across the addresses we try.
        deadline = None if timeout is None else _now() + timeout
        if _is_ip(host):
            ips = [host]
        else:
            st.fire("dns_start", DNSStartInfo(host=host))
            try:
                with anyio.fail_after(timeout):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, TimeoutError) as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                if isinstance(exc, TimeoutError):
                    raise httpcore.ConnectTimeout(str(exc)) from exc
                raise httpcore.ConnectError(str(exc)) from exc
            ips = _unique_ips(list(infos))
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        dial = _HappyEyeballs(st, orig, self, port, deadline, args, kw)
        stream = await dial.run(ips)
        _connected(st, stream)
        return stream

    return connect_tcp


#: anyio.connect_tcp's default delay before racing the next address.
HAPPY_EYEBALLS_DELAY = 0.25


class _HappyEyeballs:
    """anyio.connect_tcp's dialing (RFC 6555), one address per attempt, so that each
    attempt gets its own connect_start / connect_done as in Go.

    Same order and timing as the untraced path: the first IPv6 address, then the
    first IPv4 one, then the rest; the next attempt starts when the previous one
    failed or after 250 ms; the first connection wins and the others are cancelled
    (their connect_done carries a ConnectionAbortedError, like Go's "operation was
    canceled").
    """

    def __init__(
        self,
        st: TracedRequest,
        orig: Callable[..., Any],
        backend: Any,
        port: int,
        deadline: float | None,
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self.st, self.orig, self.backend, self.port = st, orig, backend, port
        self.deadline, self.args, self.kw = deadline, args, kw
        self.winner: Any = None
        self.errors: list[BaseException] = []

    @staticmethod
    def order(ips: list[str]) -> list[str]:
        v6 = [ip for ip in ips if ":" in ip]
        v4 = [ip for ip in ips if ":" not in ip]
        if not v6:
            return ips
        first = [v6[0], *v4[:1]]
        return first + [ip for ip in ips if ip not in first]

    async def run(self, ips: list[str]) -> Any:
        async with anyio.create_task_group() as group:
            for ip in self.order(ips):
                done = anyio.Event()
                group.start_soon(self.attempt, ip, done, group.cancel_scope)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await done.wait()
        if self.winner is None:
            raise self.errors[-1]
        return self.winner

    async def attempt(self, ip: str, done: anyio.Event, scope: Any) -> None:
        addr = _addr(ip, self.port)
        remaining = None if self.deadline is None else self.deadline - _now()
        self.st.fire("connect_start", "tcp", addr)
        try:
            stream = await self.orig(
                self.backend, ip, self.port, remaining, *self.args, **self.kw
            )
        except anyio.get_cancelled_exc_class():
            lost = ConnectionAbortedError(f"dial to {addr} canceled: another won")
            self.st.fire("connect_done", "tcp", addr, lost)
            raise
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            self.st.fire("connect_done", "tcp", addr, exc)
            self.errors.append(exc)
            done.set()
            return
        if self.winner is None:
            self.winner = stream
            self.st.fire("connect_done", "tcp", addr, None)
            scope.cancel()
        else:  # pragma: no cover - two connects finishing in the same tick
            await stream.aclose()
            lost = ConnectionAbortedError(f"dial to {addr} canceled: another won")
            self.st.fire("connect_done", "tcp", addr, lost)
        done.set()


# -- reads: first byte and interim responses -----------------------------------------


def _sync_read(orig: Callable[..., Any]) -> Callable[..., Any]:
    def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = _PUSHBACK.pop(self, b"") if _PUSHBACK else b""
        if not data:
            data = orig(self, max_bytes, timeout)
        st = _CURRENT.get()
        if st is not None and data and "await_first_byte" in st.flags:
            _first_byte(st)
        return data

    return read


def _async_read(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = _PUSHBACK.pop(self, b"") if _PUSHBACK else b""
        if not data:
            data = await orig(self, max_bytes, timeout)
        st = _CURRENT.get()
        if st is not None and data and "await_first_byte" in st.flags:
            _first_byte(st)
        return data

    return read


def _h11_interim(event: Any) -> None:
    if type(event) is h11.InformationalResponse and event.status_code != 101:
        st = _CURRENT.get()
        if st is not None:
            headers = httpx.Headers(list(event.headers.raw_items()))
            _got_1xx(st, event.status_code, headers)


def _sync_receive_event(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _receive_event(self: Any, timeout: float | None = None) -> Any:
        event = orig(self, timeout)
        _h11_interim(event)
        return event

    return _receive_event


def _async_receive_event(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def _receive_event(self: Any, timeout: float | None = None) -> Any:
        event = await orig(self, timeout)
        _h11_interim(event)
        return event

    return _receive_event


def _h2_events(conn: Any, events: list[Any]) -> None:
    streams = _H2_STREAMS.get(conn)
    if not streams:
        return
    for event in events:
        if isinstance(event, h2.events.InformationalResponseReceived):
            st = streams.get(event.stream_id)
            if st is None:
                continue
            code = 0
            headers: list[tuple[bytes, bytes]] = []
            for k, v in event.headers or ():
                k, v = bytes(k), bytes(v)
                if k == b":status":
                    code = int(v)
                elif not k.startswith(b":"):
                    headers.append((k, v))
            if code != 101:
                _h2_after_write(st, _H2Interim(conn, event.stream_id, code, headers))
        elif isinstance(event, h2.events.ResponseReceived):
            st = streams.get(event.stream_id)
            if st is not None:
                _h2_after_write(st, _first_byte)


class _H2Interim:
    """Deliver one HTTP/2 interim response to its request (resetting the stream if
    the got_1xx_response hook raises, as Go cancels it)."""

    def __init__(
        self, conn: Any, stream_id: int, code: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.conn, self.stream_id, self.code, self.headers = (
            conn,
            stream_id,
            code,
            headers,
        )

    def __call__(self, st: TracedRequest) -> None:
        try:
            _got_1xx(st, self.code, httpx.Headers(self.headers))
        except Exception:
            _abort_h2_stream(self.conn, self.stream_id)


def _h2_after_write(st: TracedRequest, action: Callable[[TracedRequest], None]) -> None:
    """Run ``action`` now, or once the request's writer has reported its headers.

    HTTP/2 reads on one thread or task can deliver the response of a stream whose
    writer, on another, has sent its HEADERS but not yet called wrote_headers (or,
    for a request without a body, wrote_request): the bytes went out first, so the
    hooks must say so too.
    """
    with _lock:
        if "h2_written" not in st.flags:
            st.source.setdefault("deferred", []).append(action)
            return
    action(st)


def _h2_written(st: TracedRequest) -> None:
    """The writer reported what it wrote: run what the readers deferred."""
    with _lock:
        st.flags.add("h2_written")
        deferred = st.source.pop("deferred", [])
    for action in deferred:
        action(st)


def _abort_h2_stream(conn: Any, stream_id: int) -> None:
    """Reset a stream whose got_1xx_response hook raised (Go cancels the stream) and
    make its reader fail; the other streams of the connection go on."""
    conn._h2_state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
    reset = h2.events.StreamReset(
        stream_id=stream_id, error_code=h2.errors.ErrorCodes.CANCEL, remote_reset=False
    )
    pending = conn._events.get(stream_id)
    if pending is not None:
        pending.append(reset)


def _sync_read_incoming(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _read_incoming_data(self: Any, request: Any) -> list[Any]:
        events: list[Any] = orig(self, request)
        _h2_events(self, events)
        return events

    return _read_incoming_data


def _async_read_incoming(orig: Callable[..., Any]) -> Callable[..., Any]:
    async def _read_incoming_data(self: Any, request: Any) -> list[Any]:
        events: list[Any] = await orig(self, request)
        _h2_events(self, events)
        return events

    return _read_incoming_data


# -- install / uninstall -------------------------------------------------------------

_PATCHES: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
    (httpx.Client, "send", _sync_send),
    (httpx.AsyncClient, "send", _async_send),
    (httpx.HTTPTransport, "handle_request", _sync_handle_request),
    (httpx.AsyncHTTPTransport, "handle_async_request", _async_handle_request),
    (HTTPConnection, "handle_request", _sync_conn_handle_request),
    (AsyncHTTPConnection, "handle_async_request", _async_conn_handle_request),
    (SyncBackend, "connect_tcp", _sync_connect_tcp),
    (AnyIOBackend, "connect_tcp", _async_connect_tcp),
    (SyncStream, "read", _sync_read),
    (AnyIOStream, "read", _async_read),
    (HTTP11Connection, "_receive_event", _sync_receive_event),
    (AsyncHTTP11Connection, "_receive_event", _async_receive_event),
    (HTTP2Connection, "_read_incoming_data", _sync_read_incoming),
    (AsyncHTTP2Connection, "_read_incoming_data", _async_read_incoming),
    (HTTP11Connection, "close", _sync_close),
    (AsyncHTTP11Connection, "aclose", _async_close),
    (HTTP2Connection, "close", _sync_close),
    (AsyncHTTP2Connection, "aclose", _async_close),
]

_originals: dict[tuple[type, str], Any] = {}


def check_versions() -> None:
    """Fail with one clear message on an httpx/httpcore we were not written for."""
    for dist, prefixes in SUPPORTED.items():
        found = version(dist)
        if not found.startswith(prefixes):
            wanted = " or ".join(p + "x" for p in prefixes)
            raise RuntimeError(
                f"pytest-httptrace supports {dist} {wanted}, found {dist} {found}. "
                "Its instrumentation patches private parts of httpx/httpcore and "
                "would not tell the truth on another version: install a supported "
                "version, or disable the plugin with -p no:httptrace."
            )


def install() -> None:
    """Patch httpx/httpcore (called when the first trace or recorder starts)."""
    if _originals:
        return
    check_versions()
    for cls, name, wrap in _PATCHES:
        original = cls.__dict__[name]
        _originals[(cls, name)] = original
        patched = wrap(original)
        patched.__name__ = getattr(original, "__name__", name)
        patched.__qualname__ = getattr(original, "__qualname__", name)
        patched.__doc__ = getattr(original, "__doc__", None)
        patched.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(cls, name, patched)


def uninstall() -> None:
    """Restore the exact original functions (called when the last trace ends)."""
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()


def installed() -> bool:
    return bool(_originals)


def original_functions() -> dict[tuple[type, str], Any]:
    """The shipped functions of every patched attribute, as found in the classes now
    (for isolation checks: after uninstall these are the originals)."""
    return {(cls, name): cls.__dict__[name] for cls, name, _ in _PATCHES}
