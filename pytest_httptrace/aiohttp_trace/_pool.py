"""The connector's pool: checkout (``get_conn``, ``got_conn``), return
(``put_idle_conn``) and the end of a connection.

Written for aiohttp 3.14 ``BaseConnector``: ``connect(req, traces, timeout)`` takes a
pooled protocol (``_get``) or dials one (``_create_connection``); ``_release(key,
protocol, should_close=...)`` either appends ``(protocol, monotonic())`` to
``_conns[key]`` (the idle pool) or closes the protocol. aiohttp's TraceConfig has
``on_connection_reuseconn`` / ``on_connection_create_*`` but no signal naming the
connection, none for its return to the pool, and they only exist for sessions the
user built with our TraceConfig: hence the private wrappers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace import GotConnInfo, TracedRequest, current_chain
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
        finally:
            slot.value = None
            _DIAL.reset(token)
        _got_conn(st, conn.protocol, pooled)
        return conn

    return connect


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
        orig(self, key, protocol, should_close=should_close)
        if st is not None:
            _released(st, self, key, protocol)

    return _release


def _released(st: TracedRequest, connector: Any, key: Any, protocol: Any) -> None:
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
    if conns and conns[-1][0] is protocol:
        st.fire("put_idle_conn", None)
    elif record is not None and record.closed_at is None and protocol.transport is None:
        record.closed_at = now


def _wrap_connection_lost(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connection_lost(self: Any, exc: BaseException | None) -> None:
        orig(self, exc)
        record = _CONNS.get(self)
        if record is not None and record.closed_at is None:
            record.closed_at = _now()

    return connection_lost
