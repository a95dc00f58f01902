"""Pool checkout and return: ``get_conn``, ``got_conn`` of a pooled connection,
``put_idle_conn``, and when a connection closes.

Written for urllib3 2.x (``HTTPConnectionPool._get_conn`` / ``_put_conn``, private
since 1.x and unchanged through 2.8): urllib3 offers no public seam at checkout or
return. We observe them and call the originals; the pool behaves as shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from urllib3.exceptions import FullPoolError

from ._state import (
    _BOUND,
    _CONNS,
    _CURRENT,
    IdlePoolClosed,
    TooManyIdleConnections,
    _got_conn,
    _lock,
    _now,
    _released,
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
        if st is None or st.state.pool is not self or st.state.conn is not None:
            return orig(self, timeout)
        if "get_conn" in st.wanted:  # no formatting for nobody
            st.fire("get_conn", _host_port(self))
        try:
            conn = orig(self, timeout)
        except BaseException as exc:
            st.error = exc
            raise
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
        kept = st.state.got and conn.sock is not None and not _body_unread(st)
        pool_open = self.pool is not None
        error: BaseException | None = None
        try:
            orig(self, conn)
        except FullPoolError as exc:
            error = exc
            raise
        finally:
            _released(st, _now())
            if conn.sock is None:
                _closed(conn)
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

    return put_conn


def _closed(conn: Any) -> None:
    with _lock:
        record = _CONNS.pop(conn, None)
    if record is not None and record.closed_at is None:
        record.closed_at = _now()


def _response_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    """urllib3's ``HTTPResponse.close``: notice the garbage collector closing a
    response nobody closed. ``io.IOBase``'s finalizer sets ``_finalizing`` on the
    object before it calls ``close()`` (CPython 3.10-3.13); the response's private
    ``_connection`` (urllib3 2.x) is the one it holds checked out. Such a response
    was never released by its user: it stays a leak in the record (its
    connection, closed, never goes back to the pool)."""

    def close(self: Any) -> None:
        if getattr(self, "_finalizing", False):
            conn = getattr(self, "_connection", None)
            st = None if conn is None else _BOUND.get(conn)
            if st is not None:
                st.state.collected = True
        return orig(self)  # type: ignore[no-any-return]

    return close


def _close(orig: Callable[..., Any]) -> Callable[..., Any]:
    def close(self: Any) -> None:
        st = _BOUND.get(self)
        if st is not None and st.state.reading:
            # http.client's getresponse() closes the connection of a response that
            # will close ("Connection: close"), handing the socket to the response:
            # the body is still to be read. The return to the pool ends it.
            return orig(self)  # type: ignore[no-any-return]
        try:
            orig(self)
        finally:
            _closed(self)
            if st is not None:
                with _lock:
                    _BOUND.pop(self, None)
                if st.state.collected:  # nobody closed it: still a leak
                    st.state.conn = None
                    st.state.http_response = None
                else:
                    _released(st, _now())

    return close
