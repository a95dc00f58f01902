"""Dialing: DNS, one ``connect_start``/``connect_done`` per address tried, TLS, and
``got_conn`` of a new connection.

Written for urllib3 2.x: ``HTTPConnection.connect`` calls ``_new_conn``, which calls
``urllib3.util.connection.create_connection``: it resolves the name and tries each
address in turn, hiding both. No public seam reports either, so while tracing we
replace ``create_connection`` in its module by a function that resolves the name
the way it does (same ``getaddrinfo`` call, same family) and hands each address to
the original, in order, with the caller's timeout and socket options: the same
sockets, the same errors, observed one by one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from .._net import host_port, is_ip
from ..trace import DNSDoneInfo, DNSStartInfo, TLSConnectionState, TracedRequest
from ._state import _CURRENT, _got_conn, _new_record, _now, _ours


def _create_connection(
    orig: Callable[..., Any], allowed_gai_family: Callable[[], int]
) -> Callable[..., Any]:
    def create_connection(address: tuple[str, int], *args: Any, **kw: Any) -> Any:
        st = _CURRENT.get()
        if st is None or not st.state.dialing:
            return orig(address, *args, **kw)
        host, port = address
        bare = host.strip("[]") if host.startswith("[") else host
        if is_ip(bare):
            infos: list[Any] = [(None, None, None, None, (bare, port))]
        else:
            try:
                bare.encode("idna")
            except UnicodeError:
                return orig(address, *args, **kw)  # raises LocationParseError
            st.fire("dns_start", DNSStartInfo(host=bare))
            try:
                infos = socket.getaddrinfo(
                    bare, port, allowed_gai_family(), socket.SOCK_STREAM
                )
            except OSError as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                raise
            ips: list[str] = []
            for info in infos:
                if str(info[4][0]) not in ips:
                    ips.append(str(info[4][0]))
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        last: OSError | None = None
        for info in infos:
            ip = str(info[4][0])
            addr = host_port(ip, port)
            st.fire("connect_start", "tcp", addr)
            try:
                sock = orig((ip, port), *args, **kw)
            except OSError as exc:
                st.fire("connect_done", "tcp", addr, exc)
                last = exc
                continue
            st.fire("connect_done", "tcp", addr, None)
            _connected(st, sock)
            return sock
        if last is None:
            raise OSError("getaddrinfo returns an empty list")
        raise last

    return create_connection


def _connected(st: TracedRequest, sock: socket.socket) -> None:
    record = _new_record(st.state.conn)
    st.connection = record
    record.last_request = st  # whose trace hears of it closing (a failed handshake)
    record.opened_at = _now()
    try:
        local, peer = sock.getsockname(), sock.getpeername()
        record.local_addr = host_port(str(local[0]), int(local[1]))
        record.peer_addr = host_port(str(peer[0]), int(peer[1]))
    except OSError:  # pragma: no cover - reset right after the connect
        pass
    if st.state.tls_expected:
        st.state.tls_started = True
        st.fire("tls_handshake_start")


def _tls_state(sock: Any) -> TLSConnectionState:
    return TLSConnectionState.of(sock)


def _connect(orig: Callable[..., Any], *, tls: bool) -> Callable[..., Any]:
    def connect(self: Any) -> None:
        st = _CURRENT.get()
        if not _ours(st, self):
            return orig(self)  # type: ignore[no-any-return]
        assert st is not None
        state = st.state
        # Through a proxy, the TCP connection goes to the proxy and TLS (if any)
        # follows a CONNECT: only the dial is reported (see the support matrix).
        state.tls_expected = (
            tls and self.proxy is None and getattr(self, "_tunnel_host", None) is None
        )
        state.dialing = True
        try:
            orig(self)
        except BaseException as exc:
            st.error = exc
            if state.tls_started:
                st.fire("tls_handshake_done", TLSConnectionState(), exc)
            raise
        finally:
            state.dialing = False
        if state.tls_started:
            tls_state = _tls_state(self.sock)
            if st.connection is not None:
                st.connection.tls = tls_state
            st.fire("tls_handshake_done", tls_state, None)
        _got_conn(st, self, fresh=True)

    return connect
