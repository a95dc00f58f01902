"""httpcore's own ``trace`` events of one request, turned into Go's hooks.

httpcore (and httpcore2, with the same event names) calls the per-request ``trace``
extension around each step: TLS, sending the headers and the body, receiving the
response head, closing. This is the one place that maps those names to hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace import TLSConnectionState, TracedRequest, WroteRequestInfo
from . import _http2, _http11
from ._continue import should_wait
from ._flavour import inner_connection
from ._interim import first_byte
from ._pool import got_conn, response_closed
from ._state import state


def on_httpcore_event(st: TracedRequest, name: str, info: dict[str, Any]) -> None:
    """Turn one httpcore ``trace`` event of this request into Go hooks."""
    handler = _HANDLERS.get(name)
    if handler is not None:
        handler(st, name.startswith("http2"), info)


Handler = Callable[[TracedRequest, bool, dict[str, Any]], None]


def _tls_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    st.fire("tls_handshake_start")


def _tls_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    tls = tls_state(info.get("return_value"))
    conn = state(st).conn
    if conn is not None:
        conn.tls = tls
    st.fire("tls_handshake_done", tls, None)


def _tls_failed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    st.fire("tls_handshake_done", TLSConnectionState(), info.get("exception"))


def _connection_init(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    got_conn(st)  # the request that opens an HTTP/2 connection


def _headers_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    got_conn(st)
    s = state(st)
    request = s.request = info["request"]
    if http2:
        conn = st.connection
        inner = inner_connection(conn.conn) if conn else None
        headers = _http2.wire_headers(inner, request)
        s.h2_body = any(
            k.lower() in (b"content-length", b"transfer-encoding")
            for k, _ in request.headers
        )
        _http2.register_stream(st, inner, info.get("stream_id"))
    else:
        headers = _http11.wire_headers(request)
    if "wrote_header_field" in st.wanted:  # decoding costs: only for a listener
        s.pending_headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
        ]
    s.expect_continue = any(
        k.lower() == b"expect" and v.lower() == b"100-continue"
        for k, v in request.headers
    )


def _headers_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    s = state(st)
    for key, value in s.pending_headers:
        st.fire("wrote_header_field", key, [value])
    s.pending_headers = []
    st.fire("wrote_headers")
    if http2 and s.h2_body:
        _http2.written(st)
    if not http2 and should_wait(st, s.request):
        s.hold_body = True


def _write_failed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    s = state(st)
    if not s.wrote_request:
        s.wrote_request = True
        # A body we withheld (final response before 100 Continue) is not a
        # failure: Go reports WroteRequest with no error then.
        err = None if s.body_withheld else info.get("exception")
        st.fire("wrote_request", WroteRequestInfo(err=err))
    if http2:
        _http2.written(st)


def _body_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    s = state(st)
    if not s.wrote_request:
        s.wrote_request = True
        st.fire("wrote_request", WroteRequestInfo(err=None))
    if http2:
        _http2.written(st)


def _reading_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    if not http2:
        state(st).await_first_byte = True  # the read tap fires the first byte


def _head_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    first_byte(st)  # normally already fired by the read tap or the HTTP/2 reader


def _read_failed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    exc = info.get("exception")
    # A body iteration the caller abandoned (GeneratorExit) is no failure.
    if st.error is None and not isinstance(exc, GeneratorExit):
        st.error = exc


def _body_read(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    state(st).body_read = True


def _closed(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    response_closed(st, http11=not http2)


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
    **_both("receive_response_body.complete", _body_read),
    **_both("response_closed.complete", _closed),
}


def tls_state(stream: Any) -> TLSConnectionState:
    """Go's ``tls.ConnectionState`` of a network stream (after the handshake)."""
    ssl_object = None if stream is None else stream.get_extra_info("ssl_object")
    return TLSConnectionState.of(ssl_object)
