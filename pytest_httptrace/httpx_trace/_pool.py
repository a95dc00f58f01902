"""The pool: which connection a request got (``got_conn``), when it went back
(``put_idle_conn``), when a connection closed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace import GotConnInfo, TracedRequest
from ._flavour import Flavour, close_reason, inner_connection
from ._state import CONNS, CURRENT, RequestState, connection_record, lock, now


def bind_connection(conn: object) -> None:
    """The pool handed ``conn`` (an httpcore ``HTTPConnection``) to this context's
    request. It becomes the request's connection once it is known to exist: at once
    if it was dialed already, else when the dial succeeds (a refused dial has none)."""
    st = CURRENT.get()
    if st is None:
        return
    s: RequestState = st.state
    if s.proxied:
        return
    record = connection_record(conn)
    if s.got_conn and record is not s.conn:
        _sent_again(st, s)
    s.conn = record
    s.fresh = inner_connection(conn) is None
    if not s.fresh:
        st.connection = s.conn


def _sent_again(st: TracedRequest, s: RequestState) -> None:
    """httpcore's pool sends the request again on another connection (the first
    one became unavailable: an HTTP/2 GOAWAY read on this request's stream, say):
    as Go does when its transport retries, the hooks run again from ``get_conn``,
    with the new connection's; the pool's ``ConnectionNotAvailable`` was never
    the caller's error."""
    old = s.conn
    if old is not None:
        with lock:
            old.active = max(0, old.active - 1)
    st.connection = None
    st.error = None
    st.closed_at = None  # httpcore closed its stream on the first connection
    s.on_a_connection()
    st.fire("get_conn", s.host_port)


def conn_handle_request(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``HTTPConnection.handle_request`` (sync and async: the async wrapper hands
    back the original coroutine, so an untraced call costs no extra coroutine)."""

    def handle_request(self: Any, request: Any) -> Any:
        bind_connection(self)
        return orig(self, request)

    return handle_request


def got_conn(st: TracedRequest) -> None:
    """``got_conn``, once, when the request first writes on its connection."""
    s: RequestState = st.state
    conn = s.conn
    if conn is None or s.got_conn:
        return
    s.got_conn = True
    st.connection = conn
    conn.last_request = st  # whose trace hears conn_closed
    t = now()
    inner = inner_connection(conn.conn)
    with lock:
        # Go: the first request to take a connection gets reused=False, every later
        # one True; a connection already open when we bound to it (dialed before
        # tracing started, say) is reused whatever we counted.
        reused = not s.fresh or conn.served > 0
        was_idle = reused and conn.active == 0
        idle_time = t - conn.idle_since if was_idle and conn.idle_since else 0.0
        conn.served += 1
        conn.active += 1
        if inner is not None and conn.protocol is None and inner not in CONNS:
            CONNS[inner] = conn
            h2 = isinstance(inner, s.flavour.h2_connections)
            conn.protocol = "HTTP/2" if h2 else "HTTP/1.1"
    if "got_conn" in st.wanted:  # the info is built only for a listener
        st.fire(
            "got_conn",
            GotConnInfo(
                conn=conn.conn, reused=reused, was_idle=was_idle, idle_time=idle_time
            ),
        )


def response_closed(st: TracedRequest, *, http11: bool) -> None:
    """The response was closed: its connection is released, and ``put_idle_conn``
    fires if it really went back to the idle pool."""
    if st.closed_at is not None:
        return
    t = st.closed_at = now()
    s: RequestState = st.state
    s.request = None  # with its body: a record must not keep it
    conn = st.connection
    # The ends of a response the caller had (its transport call returned):
    # httpcore's own close of a failed attempt is not one, that attempt ends
    # "failed" when the transport raises.
    if s.attempt_returned_at is not None:
        st.body_closed(read_to_end=s.body_read, err=st.error)
    if conn is None or not s.got_conn:
        return
    with lock:
        conn.active = max(0, conn.active - 1)
        if conn.active == 0:
            conn.idle_since = t
    inner = inner_connection(conn.conn)
    # Go calls PutIdleConn only when the connection really went back to the idle
    # pool: not for HTTP/2, not after "Connection: close" or a body closed early.
    if http11 and inner is not None and inner.is_idle():
        st.fire("put_idle_conn", None)


def _mark_closed(fl: Flavour, conn: object, *, pool_closing: bool = False) -> None:
    """``conn`` (an HTTP11/HTTP2 connection) is about to close: when, and why."""
    record = CONNS.get(conn)
    if record is None or record.close_reason is not None:
        return
    try:
        reason, err = close_reason(
            fl, conn, record.last_request, pool_closing=pool_closing
        )
    except Exception:  # never break the client's close: when, without why
        if record.closed_at is None:
            record.closed_at = now()
        return
    record.closed(reason, err)


def close(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``HTTP11Connection/HTTP2Connection.close`` and ``aclose``: when a connection
    closed, and why (the async wrapper hands back the original coroutine)."""

    def close(self: Any) -> Any:
        _mark_closed(fl, self)
        return orig(self)

    return close


def pool_close(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``ConnectionPool.close`` and ``AsyncConnectionPool.aclose`` (the client was
    closed): its connections close with it (``client_closed``)."""

    def close(self: Any) -> Any:
        for conn in self.connections:
            inner = inner_connection(conn)
            if inner is not None:
                _mark_closed(fl, inner, pool_closing=True)
        return orig(self)

    return close
