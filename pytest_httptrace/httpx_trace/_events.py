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
from ._state import RequestState, state


def on_httpcore_event(st: TracedRequest, name: str, info: dict[str, Any]) -> None:
    """Turn one httpcore ``trace`` event of this request into Go hooks (the
    per-request callback in ``_call`` looks `HANDLERS` up itself: one call less
    on every event)."""
    entry = HANDLERS.get(name)
    if entry is not None:
        entry[0](st, entry[1], info)


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
    s: RequestState = st.state
    request = s.request = info["request"]
    wanted = "wrote_header_field" in st.wanted  # the wire form only for a listener
    expect = has_body = False
    for k, v in request.headers:  # one loop, no generators: every request's path
        name = k.lower()
        if name == b"expect" and v.lower() == b"100-continue":
            expect = True
        elif name == b"content-length" or name == b"transfer-encoding":
            has_body = True
    s.expect_continue = expect
    if http2:
        conn = st.connection
        inner = inner_connection(conn.conn) if conn else None
        s.h2_body = has_body
        if wanted:
            s.pending_headers = _http2.wire_headers(inner, request)
        _http2.register_stream(st, inner, info.get("stream_id"))
    elif wanted:
        s.pending_headers = _http11.wire_headers(request)


def _headers_complete(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    s: RequestState = st.state
    if s.pending_headers:
        st.fire_header_fields(s.pending_headers)
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
    s: RequestState = st.state
    if not s.wrote_request:
        s.wrote_request = True
        st.fire("wrote_request", WroteRequestInfo(err=None))
    if http2:
        _http2.written(st)


def _reading_started(st: TracedRequest, http2: bool, info: dict[str, Any]) -> None:
    if not http2:
        st.state.await_first_byte = True  # the read tap fires the first byte


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


def _both(event: str, handler: Handler) -> dict[str, tuple[Handler, bool]]:
    return {f"http11.{event}": (handler, False), f"http2.{event}": (handler, True)}


#: httpcore trace event name -> what it means for the hooks, and whether it is an
#: HTTP/2 event. Events not listed (connect_tcp, receive_response_body.*, ...) are
#: observed elsewhere or not needed.
HANDLERS: dict[str, tuple[Handler, bool]] = {
    "connection.start_tls.started": (_tls_started, False),
    "connection.start_tls.complete": (_tls_complete, False),
    "connection.start_tls.failed": (_tls_failed, False),
    "http2.send_connection_init.started": (_connection_init, True),
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
