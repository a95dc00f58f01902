"""Pool checkout and return: ``get_conn``, ``got_conn`` of a pooled connection,
``put_idle_conn``; how a request ended (``body_closed``, ``request_done``) and when
and why a connection closed (``conn_closed``).

Written for urllib3 2.x (``HTTPConnectionPool._get_conn`` / ``_put_conn``, private
since 1.x and unchanged through 2.8) over CPython's http.client (3.10-3.13):
urllib3 offers no public seam at checkout, return or close, nor says why it closes a
connection. We observe them and call the originals; the pool behaves as shipped.
Every connection close goes through ``HTTPConnection.close``; who called it tells
why:

- ``_get_conn`` (``is_connection_dropped``, a pooled socket readable or closed):
  the server closed it while idle, or the last response was released unread (its
  bytes are what made the socket readable).
- ``_put_conn``: the pool was full (``"Connection pool is full, discarding
  connection"``) or closed.
- ``HTTPResponse.close`` of a response that still holds its connection: its user
  closed it before the end (``Connection: close`` makes it the server's).
- urllib3 after an error (``urlopen``'s clean-up, ``HTTPResponse._error_catcher``
  while reading a body): the error. ``_error_catcher`` closes the connection in its
  ``finally`` with the exception in flight, which CPython's ``sys.exc_info()``
  shows there; no other seam hands it over.
- anything else on an idle connection (``pool.close()``, ``PoolManager.clear()``
  and ``Session.close()`` whose pools' finalizers close them): the client was closed.

urllib3 has no keep-alive expiry (no idle timeout: urllib3/urllib3#2498, #3184), so
``idle_expired`` is never reported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from http.client import ImproperConnectionState, RemoteDisconnected
from typing import Any

from urllib3.exceptions import FullPoolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from ..trace import ConnCloseReason, TracedRequest
from ._state import (
    _BOUND,
    _CONNS,
    _CURRENT,
    _RELEASED_UNREAD,
    IdlePoolClosed,
    RequestAbortedByHook,
    TooManyIdleConnections,
    _got_conn,
    _lock,
    _now,
    _released,
    closing,
)


def _host_port(pool: Any) -> str:
    """Go's first hop: the proxy when there is one, else the pool's host."""
    proxy = getattr(pool, "proxy", None)
    if proxy is not None:
        host, port = proxy.host, proxy.port
    else:
        host, port = pool.host, pool.port
    if port is None:
        port = 443 if pool.scheme == "https" else 80
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _get_conn(orig: Callable[..., Any]) -> Callable[..., Any]:
    def get_conn(self: Any, timeout: float | None = None) -> Any:
        st = _CURRENT.get()
        closing.during = "checkout"
        try:
            if st is None or st.state.pool is not self or st.state.conn is not None:
                return orig(self, timeout)
            if "get_conn" in st.wanted:  # no formatting for nobody
                st.fire("get_conn", _host_port(self))
            try:
                conn = orig(self, timeout)
            except BaseException as exc:
                st.error = exc
                raise
        finally:
            closing.during = None
        st.state.conn = conn
        with _lock:
            _BOUND[conn] = st
        # urllib3 checked a pooled connection (closing a dropped one): a socket
        # still open now is the one this request will use.
        if conn.sock is not None:
            _got_conn(st, conn, fresh=False)
        return conn

    return get_conn


def _body_unread(st: Any) -> bool:
    response = st.state.http_response
    return response is not None and not response.isclosed()


def _server_closes(st: TracedRequest) -> bool:
    """The response said the connection closes after it (``Connection: close``, an
    HTTP/1.0 answer, a body delimited by the end of the stream): http.client's
    ``will_close``."""
    response = st.state.http_response
    return response is not None and bool(getattr(response, "will_close", False))


def _put_conn(orig: Callable[..., Any]) -> Callable[..., Any]:
    def put_conn(self: Any, conn: Any) -> None:
        st = None
        if conn is not None:
            with _lock:
                st = _BOUND.pop(conn, None)
        if st is None:
            return orig(self, conn)  # type: ignore[no-any-return]
        # What Go would do with this connection: not keep one that is closed
        # ("Connection: close", an error) or whose body was not read to its end
        # (urllib3 pools it anyway and drops it at the next checkout).
        unread = _body_unread(st)
        was_open = conn.sock is not None
        kept = st.state.got and was_open and not unread
        pool_open = self.pool is not None
        why: ConnCloseReason = "pool_full" if pool_open else "client_closed"
        if not was_open:  # http.client closed it with the response
            why = "server" if _server_closes(st) else "client"
        error: BaseException | None = None
        closing.during = "put"
        try:
            orig(self, conn)
        except FullPoolError as exc:
            error = exc
            raise
        finally:
            closing.during = None
            now = _now()
            if kept:
                if error is not None:
                    st.fire("put_idle_conn", error)
                elif not pool_open:
                    st.fire(
                        "put_idle_conn",
                        IdlePoolClosed(f"the pool of {self.host} is closed"),
                    )
                elif conn.sock is None:  # urllib3 closed it: the pool was full
                    st.fire(
                        "put_idle_conn",
                        TooManyIdleConnections(
                            f"too many idle connections for host {self.host}: "
                            f"the pool (maxsize {self.pool.maxsize}) is full, "
                            "urllib3 closed the connection"
                        ),
                    )
                else:
                    st.fire("put_idle_conn", None)
            _released(st, now, read_to_end=not unread, err=None)
            if conn.sock is None:
                _closed(conn, why)
            elif unread:
                with _lock:
                    _RELEASED_UNREAD.add(conn)

    return put_conn


def _closed(
    conn: Any, reason: ConnCloseReason, err: BaseException | None = None
) -> None:
    with _lock:
        record = _CONNS.pop(conn, None)
        _RELEASED_UNREAD.discard(conn)
    if record is not None:
        record.closed(reason, err)


def _error_reason(err: BaseException) -> ConnCloseReason:
    if isinstance(err, (RequestAbortedByHook, ImproperConnectionState)):
        # The request was aborted, or http.client refused a connection whose last
        # response was released unread (ResponseNotReady): the client's doing.
        return "client"
    if isinstance(err, RemoteDisconnected):
        return "server"  # closed before any byte of the response (often stale)
    if isinstance(err, (TimeoutError, Urllib3Timeout)):
        return "client"  # a read that timed out: the client gave up on it
    return "protocol_error"


def _idle_reason(conn: Any) -> ConnCloseReason:
    """Why urllib3 closes a connection nobody has checked out."""
    if getattr(closing, "during", None) == "checkout":
        # is_connection_dropped: a socket that is readable (or closed). Bytes left
        # of a body released unread make it so too: then the client is why.
        return "client" if conn in _RELEASED_UNREAD else "server"
    return "client_closed"


def _response_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    """urllib3's ``HTTPResponse.close``: whether its user closed it before the end
    of the body, and the garbage collector closing a response nobody closed.
    ``io.IOBase``'s finalizer sets ``_finalizing`` on the object before it calls
    ``close()`` (CPython 3.10-3.13); the response's private ``_connection`` (urllib3
    2.x) is the one it holds checked out (``preload_content=False``, as requests
    uses it). A collected response was never released by its user: it stays a leak
    in the record (its connection, closed, never goes back to the pool)."""

    def close(self: Any) -> None:
        conn = getattr(self, "_connection", None)
        st = None if conn is None else _BOUND.get(conn)
        if st is not None:
            if getattr(self, "_finalizing", False):
                st.state.collected = True
            else:  # its user's close (None until then)
                st.state.unread = _body_unread(st)
        return orig(self)  # type: ignore[no-any-return]

    return close


def _close(orig: Callable[..., Any]) -> Callable[..., Any]:
    def close(self: Any) -> None:
        st = _BOUND.get(self)
        if st is not None and st.state.reading:
            # http.client's getresponse() closes the connection of a response that
            # will close ("Connection: close"), handing the socket to the response:
            # the body is still to be read. The return to the pool ends it. (Or
            # begin() failed: urllib3 closes it again after the error.)
            return orig(self)  # type: ignore[no-any-return]
        try:
            orig(self)
        finally:
            if st is None:
                if getattr(closing, "during", None) != "put":  # _put_conn tells
                    _closed(self, _idle_reason(self))
            else:
                _bound_closed(st, self)

    return close


def _bound_closed(st: TracedRequest, conn: Any) -> None:
    """urllib3 (or the user) closed the connection of a request that has it checked
    out: the request ended there, and the connection, for the first reason found."""
    with _lock:
        _BOUND.pop(conn, None)
    state = st.state
    if state.collected:  # nobody closed it: still a leak, no end
        state.conn = None
        state.http_response = None
        _closed(conn, "client")
        return
    err = st.error
    if err is None and state.unread is None:
        # Not its user's close: urllib3's, after an error (a body read that broke
        # off closes it in HTTPResponse._error_catcher's finally).
        err = sys.exc_info()[1]
    unread = bool(state.unread) or _body_unread(st)
    reason: ConnCloseReason
    if err is not None:
        reason = _error_reason(err)
    elif _server_closes(st):
        reason = "server"
    else:
        reason = "client"
    _released(st, _now(), read_to_end=not unread, err=err)
    _closed(conn, reason, err)
