"""Dialing: DNS (``dns_*``), one ``connect_*`` per address tried, the TLS handshake
(``tls_*``), and the record of a new connection.

Written for aiohttp 3.14 with aiohappyeyeballs 2.x:

- ``TCPConnector._resolve_host(host, port, traces)``: an IP literal needs no lookup;
  with the DNS cache on (the default, 10 s), a fresh entry is used without a lookup, a
  lookup already running for the same host is shared (the waiters are Go's
  ``coalesced``), otherwise this request looks the name up.
- ``aiohappyeyeballs.impl._connect_sock``: one call per address tried; aiohttp races
  them (happy eyeballs, 250 ms apart) and cancels the losers. The only place that sees
  each attempt begin and end: aiohttp hands the whole race to aiohappyeyeballs, and
  its ``socket_factory`` argument (a connector setting) sees only the beginning.
- ``TCPConnector._wrap_create_connection``: the race, then
  ``loop.create_connection(factory, sock=..., ssl=...)``, which creates the
  ``ResponseHandler`` right before the handshake and calls its ``connection_made``
  right after it (plain connections: right away).

aiohttp's TraceConfig signals say "DNS start/end" without the addresses or the error,
and nothing about addresses, TLS or the connection made.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp.helpers import is_ip_address

from .._net import host_port
from ..trace import DNSDoneInfo, DNSStartInfo, TLSConnectionState, TracedRequest
from ._core import (
    _HANDSHAKING,
    _canceled,
    _connection_record,
    _dialing,
    _now,
)

# -- DNS -----------------------------------------------------------------------------


def _unique_ips(hosts: list[dict[str, Any]]) -> list[str]:
    ips: list[str] = []
    for host in hosts:
        ip = str(host["host"])
        if ip not in ips:
            ips.append(ip)
    return ips


def _wrap_resolve_host(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _resolve_host(self: Any, host: str, port: int, traces: Any = None) -> Any:
        st = _dialing()
        if st is None:
            return orig(self, host, port, traces)
        return traced(st, self, host, port, traces)

    async def traced(
        st: TracedRequest, self: Any, host: str, port: int, traces: Any
    ) -> Any:
        if is_ip_address(host):
            return await orig(self, host, port, traces)  # no lookup, as in Go
        key = (host, port)
        coalesced = False
        if self._use_dns_cache:
            cache = self._cached_hosts
            if key in cache and not cache.expired(key):
                # A fresh cache entry: aiohttp looks nothing up, and we report no
                # lookup (as for an IP literal). See the support matrix.
                return await orig(self, host, port, traces)
            coalesced = key in self._throttle_dns_futures
        st.fire("dns_start", DNSStartInfo(host=host))
        try:
            hosts = await orig(self, host, port, traces)
        except asyncio.CancelledError:
            err = _canceled(f"lookup of {host}")
            st.fire("dns_done", DNSDoneInfo(addrs=[], err=err, coalesced=coalesced))
            raise
        except BaseException as exc:
            st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc, coalesced=coalesced))
            raise
        st.fire("dns_done", DNSDoneInfo(addrs=_unique_ips(hosts), coalesced=coalesced))
        return hosts

    return _resolve_host


# -- one connect per address ---------------------------------------------------------


def _wrap_connect_sock(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _connect_sock(
        loop: Any, exceptions: Any, addr_info: Any, *a: Any, **k: Any
    ) -> Any:
        st = _dialing()
        if st is None:
            return orig(loop, exceptions, addr_info, *a, **k)
        return traced(st, loop, exceptions, addr_info, *a, **k)

    async def traced(
        st: TracedRequest, loop: Any, exceptions: Any, addr_info: Any, *a: Any, **k: Any
    ) -> Any:
        address = addr_info[4]
        addr = host_port(str(address[0]), int(address[1]))
        st.fire("connect_start", "tcp", addr)
        try:
            sock = await orig(loop, exceptions, addr_info, *a, **k)
        except asyncio.CancelledError:
            # Another address won the race, or the task was cancelled.
            st.fire("connect_done", "tcp", addr, _canceled(f"dial to {addr}"))
            raise
        except BaseException as exc:
            st.fire("connect_done", "tcp", addr, exc)
            raise
        st.fire("connect_done", "tcp", addr, None)
        return sock

    return _connect_sock


# -- the connection and its TLS handshake --------------------------------------------


def _wrap_create(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _wrap_create_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        st = _dialing()
        if st is None:
            return orig(self, *args, **kwargs)
        return traced(st, self, *args, **kwargs)

    async def traced(st: TracedRequest, self: Any, *args: Any, **kwargs: Any) -> Any:
        st.state.tls_started = False
        try:
            transport, proto = await orig(self, *args, **kwargs)
        except BaseException as exc:
            if st.state.tls_started:
                st.state.tls_started = False
                err: BaseException = exc
                if isinstance(exc, asyncio.CancelledError):
                    err = _canceled("TLS handshake")
                elif isinstance(exc.__cause__, ssl.SSLError):
                    err = exc.__cause__  # the handshake's own error, as Go reports
                st.fire("tls_handshake_done", TLSConnectionState(), err)
            raise
        st.state.dialed = weakref.ref(proto)
        record = _connection_record(proto)
        record.opened_at = _now()
        record.local_addr = _sockaddr(transport.get_extra_info("sockname"))
        record.peer_addr = _sockaddr(transport.get_extra_info("peername"))
        return transport, proto

    return _wrap_create_connection


def _sockaddr(value: Any) -> str | None:
    if not value:
        return None
    return host_port(str(value[0]), int(value[1]))


def _wrap_protocol_init(orig: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        st = _dialing()
        if st is not None and st.state.tls and not st.state.tls_started:
            # loop.create_connection(ssl=...) makes the protocol, then starts the
            # handshake at once: this is the handshake's start.
            st.state.tls_started = True
            _HANDSHAKING[self] = st
            st.fire("tls_handshake_start")

    return __init__


def _wrap_connection_made(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connection_made(self: Any, transport: Any) -> None:
        orig(self, transport)
        st = _HANDSHAKING.pop(self, None)
        if st is not None and st.state.tls_started:
            st.state.tls_started = False
            state = _tls_state(transport)
            record = _connection_record(self)
            record.tls = state
            # The connection exists from here on, whether the request gets it or
            # not (a connector closed meanwhile closes it again): its record shows it.
            st.connection = record
            st.fire("tls_handshake_done", state, None)

    return connection_made


def _tls_state(transport: Any) -> TLSConnectionState:
    return TLSConnectionState.of(transport.get_extra_info("ssl_object"))
