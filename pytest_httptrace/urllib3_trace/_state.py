"""Per-request state of the urllib3 source, the per-context variables, connection
records and the hook helpers that every part calls.

Written for urllib3 2.x (tested on 2.0, 2.2 and 2.8) over the standard library's
``http.client``.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
import weakref
from importlib.metadata import version as _version
from typing import Any

from urllib3.exceptions import HTTPError

from .. import trace as _trace
from ..sources import SourceInfo
from ..trace import GotConnInfo, TracedConnection, TracedRequest


class RequestAbortedByHook(_trace.RequestAbortedByHook, HTTPError):
    """`pytest_httptrace.RequestAbortedByHook` as a ``urllib3.exceptions.HTTPError``.

    Its base is urllib3's root error, not ``ProtocolError``: urllib3 retries a
    ``ProtocolError`` (it would send the request again, where Go aborts), and
    ``requests`` re-raises any other urllib3 ``HTTPError`` as it is, so both
    ``except urllib3.exceptions.HTTPError`` and ``except RequestAbortedByHook`` catch
    it, from urllib3 and from requests alike.
    """


class TooManyIdleConnections(Exception):
    """``put_idle_conn``'s error when urllib3's pool was full and the connection was
    closed instead of kept: Go's ``errTooManyIdleHost`` ("too many idle connections
    for host")."""


class IdlePoolClosed(Exception):
    """``put_idle_conn``'s error when the pool had been closed (``pool.close()``,
    ``PoolManager.clear()``): Go's ``errCloseIdle``."""


class _State:
    """The urllib3 source's per-request (per-attempt) state."""

    __slots__ = (
        "collected",
        "conn",
        "dialing",
        "expect_continue",
        "fields",
        "first_byte",
        "flush_at_connect",
        "got",
        "got_100",
        "http_response",
        "pool",
        "reading",
        "successor",
        "tls_expected",
        "tls_started",
        "unread",
    )

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.conn: Any = None
        """The urllib3 HTTPConnection this attempt checked out."""
        self.got = False
        self.dialing = False
        self.tls_expected = False
        self.tls_started = False
        self.fields: list[bytes] = []
        self.flush_at_connect = False
        self.reading = False
        self.first_byte = False
        self.expect_continue = False
        self.got_100 = False
        self.http_response: Any = None
        """The ``http.client.HTTPResponse`` that read this attempt's response."""
        self.collected = False
        """The garbage collector closed the response: nobody released it."""
        self.successor: TracedRequest | None = None
        """The attempt urllib3 made next from inside this one (retry, redirect)."""
        self.unread: bool | None = None
        """Whether the body was unread when its user closed the response (urllib3's
        ``HTTPResponse.close``, requests' ``Response.close``); None: not closed so."""


# -- per-context state ----------------------------------------------------------------

#: The attempt this context is making (set around ``HTTPConnectionPool.urlopen``).
_CURRENT: contextvars.ContextVar[TracedRequest | None] = contextvars.ContextVar(
    "pytest_httptrace_urllib3_current", default=None
)
#: The attempts made by the current user call (``Session.send``, ``urlopen``).
_CALL: contextvars.ContextVar[list[TracedRequest] | None] = contextvars.ContextVar(
    "pytest_httptrace_urllib3_call", default=None
)

_lock = threading.Lock()
_conn_ids = iter(range(1, 1 << 62))
#: urllib3 HTTPConnection -> the record of the socket it holds now. One urllib3
#: connection object dials again after a close: each socket is its own record.
_CONNS: weakref.WeakKeyDictionary[object, TracedConnection] = (
    weakref.WeakKeyDictionary()
)
#: urllib3 HTTPConnection -> the attempt that has it checked out (until it is put
#: back into the pool or closed, which may be after the call returned).
_BOUND: weakref.WeakKeyDictionary[object, TracedRequest] = weakref.WeakKeyDictionary()

#: Connections urllib3 pooled with a response released before its end (the rest of
#: the body is still in the socket, or in http.client's buffer): why the next
#: checkout finds one readable, or http.client refuses it.
_RELEASED_UNREAD: weakref.WeakSet[object] = weakref.WeakSet()

#: What this thread is doing with a pool while urllib3 may close an idle connection
#: (``closing.during``): ``"checkout"`` (``_get_conn`` drops a connection it finds
#: dropped), ``"put"`` (``_put_conn`` closes what it cannot keep), else None (a pool
#: closed, its pool manager cleared, or collected).
closing = threading.local()


def _now() -> float:
    return time.monotonic()


def _ours(st: TracedRequest | None, conn: object) -> bool:
    return st is not None and st.state.conn is conn


def _new_record(conn: object) -> TracedConnection:
    record = TracedConnection.of(conn, id=next(_conn_ids), protocol="HTTP/1.1")
    with _lock:
        _CONNS[conn] = record
    return record


def _got_conn(st: TracedRequest, conn: Any, *, fresh: bool) -> None:
    """Fire ``got_conn`` with Go's meaning: the first request on a connection gets
    reused=False, later ones True; a connection open before tracing is reused."""
    if st.state.got:
        return
    st.state.got = True
    now = _now()
    with _lock:
        record = _CONNS.get(conn)
        if record is None:  # opened before tracing started
            record = TracedConnection.of(conn, id=next(_conn_ids), protocol="HTTP/1.1")
            _CONNS[conn] = record
        reused = not fresh or record.served > 0
        was_idle = reused and record.active == 0
        idle_time = (
            now - record.idle_since
            if was_idle and record.idle_since is not None
            else 0.0
        )
        record.served += 1
        record.active += 1
        record.last_request = st
        if _RELEASED_UNREAD:  # reused after all: its body no longer in the way
            _RELEASED_UNREAD.discard(conn)
    st.connection = record
    if "got_conn" in st.wanted:
        st.fire(
            "got_conn",
            GotConnInfo(
                conn=conn, reused=reused, was_idle=was_idle, idle_time=idle_time
            ),
        )
    if st.state.flush_at_connect:  # a dial inside endheaders(): plain HTTP
        _flush_fields(st)


def _flush_fields(st: TracedRequest) -> None:
    """Fire ``wrote_header_field`` for each header line http.client buffered, in
    order, exactly as it goes on the wire."""
    st.state.flush_at_connect = False
    lines, st.state.fields = st.state.fields, []
    if b"\r\n\t" not in b"".join(lines):
        # One value per line (what urllib3 writes): split when read, if ever.
        st.fire_header_fields(lambda: [_field(line) for line in lines])
        return
    for line in lines:  # a folded line (obs-fold) is one field with its values
        key, value = _field(line)
        values = value.split(b"\r\n\t")
        st.fire(
            "wrote_header_field",
            key.decode("latin-1"),
            [v.decode("latin-1") for v in values],
        )


def _field(line: bytes) -> tuple[bytes, bytes]:
    """``(name, value)`` of a header line http.client buffered (``Name: value``)."""
    key, _, value = line.partition(b":")
    return key, value.strip(b" ")


def _released(
    st: TracedRequest, now: float, *, read_to_end: bool, err: BaseException | None
) -> None:
    """The attempt's response is done with its connection (kept or not): when, and
    how its lifecycle ended (``body_closed``/``request_done``, or failed with
    ``err``; a failure before any response has no body to close)."""
    if st.closed_at is None:
        st.closed_at = now
    record = st.connection
    if record is not None and st.state.got:
        with _lock:
            record.active = max(0, record.active - 1)
            if record.active == 0:
                record.idle_since = now
    if err is not None and st.status is None:
        st.done("failed", err)
    else:
        st.body_closed(read_to_end=read_to_end and err is None, err=err)
    st.state.http_response = None  # a record must not keep the body
    st.state.conn = None


@functools.cache
def _source_info() -> SourceInfo:
    return SourceInfo(name="urllib3", library="urllib3", version=_version("urllib3"))
