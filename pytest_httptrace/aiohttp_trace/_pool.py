"""The connector's pool: checkout (``get_conn``, ``got_conn``), return
(``put_idle_conn``) and the end of a connection.

Written for aiohttp 3.14 ``BaseConnector``: ``connect(req, traces, timeout)`` takes a
pooled protocol (``_get``) or dials one (``_create_connection``); ``_release(key,
protocol, should_close=...)`` either appends ``(protocol, monotonic())`` to
``_conns[key]`` (the idle pool) or closes the protocol. aiohttp's TraceConfig has
``on_connection_reuseconn`` / ``on_connection_create_*`` but no signal naming the
connection, none for its return to the pool, and they only exist for sessions the
user built with our TraceConfig: hence the private wrappers.

The ends (our ``body_closed``, ``request_done``, ``conn_closed``), from the places
aiohttp 3.14 closes things, each read before it forgets why:

- ``_release``: the response's body stream (kept from ``ResponseHandler.read``) is
  at its end or not, and broke off with an error or with the one
  ``ClientResponse._notify_content`` sets on an early release; the protocol's
  ``_exception`` and ``_should_close`` say why ``protocol.should_close`` refused
  the pool.
- ``_get`` (a connection picked from the pool: each one before the one it returns
  was closed, disconnected or past ``keepalive_timeout``), ``_cleanup`` (the
  keep-alive timer closing the expired ones), ``_close`` (``session.close()``,
  ``connector.close()``), ``connect`` (a dial that met a closed connector).
- ``ResponseHandler.connection_lost``: a close nobody above saw: the server's end of
  stream, a reset, a malformed response.

aiohttp has no "too many idle connections" discard (``limit`` and
``limit_per_host`` make requests wait; the idle pool is unbounded): ``pool_full``
never arises.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import _CONNECTION_CLOSED_EXCEPTION as _RELEASED

from ..trace import ConnCloseReason, GotConnInfo, TracedRequest, current_chain
from ._core import (
    _ACTIVE,
    _BY_REQUEST,
    _CALL,
    _CONNS,
    _DIAL,
    _READING,
    _connection_record,
    _lock,
    _now,
    _Slot,
    _source_info,
    _State,
)


def _host_port(req: Any) -> str:
    url = req.proxy if req.proxy is not None else req.url
    host = url.raw_host or ""
    port = url.port or (443 if url.scheme in ("https", "wss") else 80)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _start(req: Any, call: list[TracedRequest]) -> TracedRequest | None:
    chain = current_chain()
    if not chain:
        return None
    st = TracedRequest(
        method=req.method,
        url=str(req.url),
        chain=chain,
        source=_source_info(),
        state=_State(),
    )
    st.state.proxied = req.proxy is not None
    st.state.tls = req.is_ssl() and not st.state.proxied
    st.join_call(call)
    _BY_REQUEST[req] = st
    st.fire("get_conn", _host_port(req))
    return st


def _wrap_connect(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: Any, req: Any, traces: Any, timeout: Any) -> Any:
        slot = _CALL.get()
        call = None if slot is None else slot.value
        if call is None:
            return orig(self, req, traces, timeout)
        return traced(self, req, traces, timeout, call)

    async def traced(
        self: Any, req: Any, traces: Any, timeout: Any, call: list[TracedRequest]
    ) -> Any:
        st = _start(req, call)
        if st is None:
            return await orig(self, req, traces, timeout)
        # When each pooled connection went idle, by aiohttp's own clock (read before
        # connect() takes one, synchronously: nothing runs in between).
        pooled = {proto: t0 for proto, t0 in self._conns.get(req.connection_key, ())}
        slot = _Slot(st)
        token = _DIAL.set(slot)
        try:
            conn = await orig(self, req, traces, timeout)
        except BaseException:
            if self._closed:
                _dialed_into_closed_connector(st)
            raise
        finally:
            slot.value = None
            _DIAL.reset(token)
        _got_conn(st, conn.protocol, pooled)
        return conn

    return connect


def _dialed_into_closed_connector(st: TracedRequest) -> None:
    # connect(): a connection dialed while the connector was closed is closed again.
    dialed = st.state.dialed
    proto = None if dialed is None else dialed()
    record = None if proto is None else _CONNS.get(proto)
    if record is not None:
        st.connection = record
        record.last_request = st  # whose traces hear its conn_closed
        record.closed("client_closed")


def _got_conn(st: TracedRequest, proto: Any, pooled: dict[Any, float]) -> None:
    if proto is None:  # pragma: no cover - connect() never returns one without
        return
    dialed = st.state.dialed
    # New: dialed by this attempt (TCPConnector), or neither in the pool when the
    # attempt began nor known to us (another connector's own dial: UnixConnector).
    fresh = (dialed is not None and dialed() is proto) or (
        proto not in pooled and proto not in _CONNS
    )
    record = _connection_record(proto)
    now = _now()
    with _lock:
        # Go: the first request on a connection gets reused=False, every later one
        # True (a connection dialed before tracing started is reused).
        reused = not fresh or record.served > 0
        was_idle = reused and record.active == 0
        idle_time = 0.0
        if was_idle:
            since = pooled.get(proto, record.idle_since)
            idle_time = max(0.0, now - since) if since is not None else 0.0
        record.served += 1
        record.active += 1
    st.connection = record
    record.last_request = st  # whose trace hears conn_closed
    st.state.got_conn = True
    _ACTIVE[proto] = st
    st.fire(
        "got_conn",
        GotConnInfo(conn=proto, reused=reused, was_idle=was_idle, idle_time=idle_time),
    )


def _wrap_release(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _release(
        self: Any, key: Any, protocol: Any, *, should_close: bool = False
    ) -> None:
        st = _ACTIVE.pop(protocol, None)
        if st is None:
            orig(self, key, protocol, should_close=should_close)
            return
        # Read before aiohttp closes the protocol (close() forgets its error).
        pending = protocol._exception
        orig(self, key, protocol, should_close=should_close)
        _released(st, self, key, protocol, pending)

    return _release


def _released(
    st: TracedRequest,
    connector: Any,
    key: Any,
    protocol: Any,
    pending: BaseException | None,
) -> None:
    """The attempt gave its connection back: to the idle pool, or closed."""
    _READING.pop(protocol, None)
    now = _now()
    if st.closed_at is None:
        st.closed_at = now
    record = st.connection
    if record is not None:
        with _lock:
            record.active = max(0, record.active - 1)
            if record.active == 0:
                record.idle_since = now
    # Go calls PutIdleConn only when the connection really went into the idle pool;
    # a connection that is not kept (Connection: close, a body not read to its end,
    # force_close, a closed connector) is closed, and Go calls nothing then. aiohttp's
    # pool never refuses a kept-alive connection (its limits count connections in
    # use, not idle ones), so the err Go passes on a refusal never arises.
    conns = connector._conns.get(key)
    pooled = bool(conns) and conns[-1][0] is protocol
    if pooled:
        st.fire("put_idle_conn", None)
    _ended(st, pending)
    if not pooled and record is not None and protocol.transport is None:
        # aiohttp closed it on release (a closed connector closed it before).
        reason, err = _release_close_reason(connector, protocol, pending)
        record.closed(reason, err)


def _ended(st: TracedRequest, pending: BaseException | None) -> None:
    """The end of an attempt whose connection was released (see docs/aiohttp.md)."""
    payload = st.state.payload
    if payload is None:
        # Released before a final response head: aiohttp cleaning up a failure (the
        # call raises, or aiohttp retries on a new connection). The call's end
        # reports it, with the error the caller saw (`_call._end_call`).
        if st.state.fail is None:
            st.state.fail = pending if pending is not None else _handled()
        return
    err = st.state.fail
    if err is None and st.hook_errors and st.returned_at is None:
        err = st.hook_errors[0]  # the call will raise it
    read_to_end = payload.is_eof()
    if err is None and not read_to_end:
        err = _body_error(payload)
        if err is None:
            err = _handled(_READ_ERRORS)
    st.body_closed(read_to_end=read_to_end, err=err)


#: The errors that, raised through a response's release while its body was not read
#: to its end, broke off the read (any other exception is the caller's own business:
#: the response was closed early).
_READ_ERRORS = (
    asyncio.CancelledError,
    asyncio.TimeoutError,
    TimeoutError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)


def _handled(kinds: Any = BaseException) -> BaseException | None:
    """The exception being handled where aiohttp releases the connection (its
    ``except BaseException: conn.close(); raise``, or an ``async with`` exited by an
    exception), if it is one of ``kinds``."""
    exc = sys.exc_info()[1]
    return exc if isinstance(exc, kinds) else None


def _body_error(payload: Any) -> BaseException | None:
    """The error the body stream broke off with; not the one aiohttp sets on it
    when the response is released early (``ClientResponse._notify_content``)."""
    exc = payload.exception()
    return None if exc is None or exc is _RELEASED else exc


def _release_close_reason(
    connector: Any, protocol: Any, pending: BaseException | None
) -> tuple[ConnCloseReason, BaseException | None]:
    """Why aiohttp's ``_release`` closed the connection instead of pooling it:
    ``force_close or should_close or protocol.should_close`` (the last one: an
    error, a body not at its end, ``Connection: close``, an unread response)."""
    if pending is not None:
        if isinstance(pending, (asyncio.TimeoutError, TimeoutError)):
            return "client", pending  # sock_read timeout: aiohttp gave up on it
        return "protocol_error", pending  # e.g. a malformed response
    if connector._force_close:
        # force_close=True: the client keeps no connection (it asks the server for
        # Connection: close too, which the server then answers with).
        return "client", None
    if protocol._should_close:
        return "server", None  # Connection: close (or an HTTP/1.0 response)
    # The body not read to its end, resp.close(), a cancelled or failed attempt (a
    # response left unread behind an aborting got_1xx_response hook).
    return "client", None


def _wrap_get(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _get(self: Any, key: Any, traces: Any) -> Any:
        conns = self._conns.get(key)
        if conns:
            # The cheap case: the oldest idle connection is fit (aiohttp's own test
            # of it, read ahead), so _get closes nothing.
            proto, t0 = conns[0]
            timeout = self._keepalive_timeout
            if not proto.is_connected() or (
                timeout is not None and _now() - t0 > timeout
            ):
                return traced(self, key, traces, tuple(conns))
        return orig(self, key, traces)

    async def traced(self: Any, key: Any, traces: Any, before: Any) -> Any:
        conn = await orig(self, key, traces)
        # _get takes the idle connections oldest first, closing each that is
        # disconnected or past keepalive_timeout, until one is fit: those before it.
        taken = None if conn is None else conn.protocol
        for proto, t0 in before:
            if proto is taken:
                break
            _pool_discarded(self, proto, t0)
        return conn

    return _get


def _wrap_cleanup(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _cleanup(self: Any) -> None:
        before = [e for conns in self._conns.values() for e in conns]
        orig(self)
        for proto, t0 in before:
            if proto.transport is None:
                _pool_discarded(self, proto, t0)

    return _cleanup


def _pool_discarded(connector: Any, proto: Any, t0: float) -> None:
    """The pool closed an idle connection: expired, or found disconnected (the
    latter is normally recorded already, by ``connection_lost``)."""
    record = _CONNS.get(proto)
    if record is None or record.close_reason is not None:
        return
    timeout = connector._keepalive_timeout
    expired = timeout is not None and _now() - t0 > timeout
    record.closed("idle_expired" if expired else "server")


def _wrap_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _close(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._closed or not _CONNS:
            return orig(self, *args, **kwargs)
        protos = [p for conns in self._conns.values() for p, _ in conns]
        protos += [p for p in self._acquired if isinstance(p, ResponseHandler)]
        try:
            return orig(self, *args, **kwargs)
        finally:
            for proto in protos:
                record = _CONNS.get(proto)
                if record is not None and proto.transport is None:  # it did close
                    record.closed("client_closed")

    return _close


def _wrap_connection_lost(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connection_lost(self: Any, exc: BaseException | None) -> None:
        record = _CONNS.get(self)
        if record is None or record.close_reason is not None:
            orig(self, exc)
            return
        # aiohttp's own close() forgets the transport (and the error) at once; a
        # transport that closed by itself (the peer's end, a reset, a parse error
        # aiohttp closed the transport for) still has it here.
        ours = self.transport is None
        pending = self._exception
        orig(self, exc)
        if exc is not None:
            record.closed("protocol_error", exc)  # a reset, a failed read or write
        elif pending is not None and not isinstance(
            pending, (asyncio.TimeoutError, TimeoutError)
        ):
            record.closed("protocol_error", pending)
        elif ours:
            record.closed("client")  # closed by aiohttp on a path not seen above
        else:
            record.closed("server")  # the server closed it (end of stream)

    return connection_lost
