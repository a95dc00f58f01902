"""httpcore's own ``trace`` events of one request, turned into Go's hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from httpcore._async.http2 import AsyncHTTP2Connection
from httpcore._sync.http2 import HTTP2Connection

from ..trace import GotConnInfo, TLSConnectionState, TracedRequest, WroteRequestInfo
from ._continue import _should_wait
from ._core import _CONNS, _H2_STREAMS, _first_byte, _lock, _now

# -- httpcore's trace events ---------------------------------------------------------


def _on_httpcore_event(st: TracedRequest, name: str, info: dict[str, Any]) -> None:
    """Turn one httpcore ``trace`` event of this request into Go hooks."""
    handler = _HANDLERS.get(name)
    if handler is not None:
        handler(st, name.startswith("http2"), info)


Handler = Callable[[TracedRequest, bool, dict[str, Any]], None]


def _tls_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    st.fire("tls_handshake_start")


def _tls_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    state = _tls_state(info.get("return_value"))
    if st.connection is not None:
        st.connection.tls = state
    st.fire("tls_handshake_done", state, None)


def _tls_failed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    st.fire("tls_handshake_done", TLSConnectionState(), info.get("exception"))


def _connection_init(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    _got_conn(st)  # the request that opens an HTTP/2 connection


def _headers_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    _got_conn(st)
    request = st.state.data["request"] = info["request"]
    headers: list[tuple[bytes, bytes]] = list(request.headers)
    if http2:
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
            st.state.flags.add("h2_body")
        stream_id = info.get("stream_id")
        conn = st.connection
        inner = getattr(conn.conn, "_connection", None) if conn else None
        if stream_id is not None and inner is not None:
            with _lock:
                _H2_STREAMS.setdefault(inner, {})[stream_id] = st
    if "wrote_header_field" in st.wanted:  # decoding costs: only for a listener
        st.state.pending_headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
        ]
    if any(k.lower() == b"expect" and v.lower() == b"100-continue" for k, v in headers):
        st.state.flags.add("expect_continue")


def _headers_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    for key, value in st.state.pending_headers:
        st.fire("wrote_header_field", key, [value])
    st.state.pending_headers = []
    st.fire("wrote_headers")
    if http2 and "h2_body" in st.state.flags:
        _h2_written(st)
    if not http2 and _should_wait(st, st.state.data.get("request")):
        st.state.flags.add("hold_body")


def _write_failed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    if "wrote_request" not in st.state.flags:
        st.state.flags.add("wrote_request")
        # A body we withheld (final response before 100 Continue) is not a
        # failure: Go reports WroteRequest with no error then.
        err = None if "body_withheld" in st.state.flags else info.get("exception")
        st.fire("wrote_request", WroteRequestInfo(err=err))
    if http2:
        _h2_written(st)


def _body_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    if "wrote_request" not in st.state.flags:
        st.state.flags.add("wrote_request")
        st.fire("wrote_request", WroteRequestInfo(err=None))
    if http2:
        _h2_written(st)


def _reading_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    if not http2:
        st.state.flags.add(
            "await_first_byte"
        )  # the read tap fires got_first_response_byte


def _head_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    _first_byte(st)  # normally already fired by the read tap or the HTTP/2 reader


def _read_failed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    exc = info.get("exception")
    # A body iteration the caller abandoned (GeneratorExit) is no failure.
    if st.error is None and not isinstance(exc, GeneratorExit):
        st.error = exc


def _closed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    _response_closed(st, http11=not http2)


def _both(event: str, handler: Handler) -> dict[str, Handler]:
    return {f"http11.{event}": handler, f"http2.{event}": handler}


#: httpcore trace event name -> what it means for the hooks. Events not listed
#: (connect_tcp, receive_response_body.*, ...) are observed elsewhere or not needed.
_HANDLERS: dict[str, Handler] = {
    "connection.start_tls.started": _tls_started,
    "connection.start_tls.complete": _tls_complete,
    "connection.start_tls.failed": _tls_failed,
    "http2.send_connection_init.started": _connection_init,
    **_both("send_request_headers.started", _headers_started),
    **_both("send_request_headers.complete", _headers_complete),
    **_both("send_request_headers.failed", _write_failed),
    **_both("send_request_body.failed", _write_failed),
    **_both("send_request_body.complete", _body_complete),
    **_both("receive_response_headers.started", _reading_started),
    **_both("receive_response_headers.complete", _head_complete),
    **_both("receive_response_headers.failed", _read_failed),
    **_both("receive_response_body.failed", _read_failed),
    **_both("response_closed.complete", _closed),
}


def _got_conn(st: TracedRequest) -> None:
    conn = st.connection
    if conn is None or "conn_pending" not in st.state.flags:
        return
    st.state.flags.discard("conn_pending")
    st.state.flags.add("got_conn")
    now = _now()
    inner = getattr(conn.conn, "_connection", None)
    with _lock:
        # Go: the first request to take a connection gets reused=False, every later
        # one True; a connection already open when we bound to it (dialed before
        # tracing started, say) is reused whatever we counted.
        reused = "fresh" not in st.state.flags or conn.served > 0
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
    st.state.data.pop("request", None)  # with its body: a record must not keep it
    conn = st.connection
    if conn is None or "got_conn" not in st.state.flags:
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


def _h2_after_write(st: TracedRequest, action: Callable[[TracedRequest], None]) -> None:
    """Run ``action`` now, or once the request's writer has reported its headers.

    HTTP/2 reads on one thread or task can deliver the response of a stream whose
    writer, on another, has sent its HEADERS but not yet called wrote_headers (or,
    for a request without a body, wrote_request): the bytes went out first, so the
    hooks must say so too.
    """
    with _lock:
        if "h2_written" not in st.state.flags:
            st.state.data.setdefault("deferred", []).append(action)
            return
    action(st)


def _h2_written(st: TracedRequest) -> None:
    """The writer reported what it wrote: run what the readers deferred."""
    with _lock:
        st.state.flags.add("h2_written")
        deferred = st.state.data.pop("deferred", [])
    for action in deferred:
        action(st)
