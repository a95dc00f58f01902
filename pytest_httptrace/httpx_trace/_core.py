"""Per-request state shared by the instrumentation, and the hook helpers that
every part calls."""

from __future__ import annotations

import contextvars
import threading
import time
import weakref

import httpx

from ..trace import TracedConnection, TracedRequest


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


def _now() -> float:
    return time.monotonic()


def _connection_record(conn: object) -> TracedConnection:
    with _lock:
        record = _CONNS.get(conn)
        if record is None:
            record = TracedConnection.of(conn, id=next(_conn_ids))
            _CONNS[conn] = record
        return record


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
