"""Per-request state shared by the instrumentation, and the hook helpers that
every part calls."""

from __future__ import annotations

import contextvars
import functools
import threading
import time
import weakref
from typing import Any

import httpx

from .. import trace as _trace
from ..sources import SourceInfo
from ..trace import TracedConnection, TracedRequest


class RequestAbortedByHook(_trace.RequestAbortedByHook, httpx.TransportError):
    """`pytest_httptrace.RequestAbortedByHook` as an ``httpx.TransportError``."""


class _State:
    """The httpx source's per-request state."""

    __slots__ = ("data", "flags", "pending_headers")

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.data: dict[str, Any] = {}
        self.pending_headers: list[tuple[str, str]] = []


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
    if "first_byte" not in st.state.flags:
        st.state.flags.add("first_byte")
        st.state.flags.discard("await_first_byte")
        st.fire("got_first_response_byte")


def _got_1xx(st: TracedRequest, code: int, headers: httpx.Headers) -> None:
    """Fire the hooks of one interim response; an exception from got_1xx_response
    propagates (the caller aborts the request)."""
    _first_byte(st)
    if (
        code == 100
        and "expect_continue" in st.state.flags
        and "got_100" not in st.state.flags
    ):
        st.state.flags.add("got_100")
        st.fire("got_100_continue")
    try:
        st.fire_got_1xx(code, headers)
    except Exception as exc:
        st.abort = exc
        raise


@functools.cache
def _source_info() -> SourceInfo:
    return SourceInfo(name="httpx", library="httpx", version=httpx.__version__)
