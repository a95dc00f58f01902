"""Dialing: DNS (``dns_start``/``dns_done``) and one ``connect_start`` /
``connect_done`` per address tried, sync and async (anyio's happy eyeballs)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from .._net import host_port, is_ip
from ..trace import DNSDoneInfo, DNSStartInfo, TracedRequest
from ._flavour import Flavour
from ._state import CURRENT, now, state

#: anyio.connect_tcp's default delay before racing the next address.
HAPPY_EYEBALLS_DELAY = 0.25


def _unique_ips(infos: list[Any]) -> list[str]:
    ips: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in ips:
            ips.append(ip)
    return ips


def _connected(st: TracedRequest, stream: Any) -> None:
    """The dial succeeded: the connection exists from now on."""
    conn = state(st).conn
    if conn is None:
        return
    st.connection = conn
    conn.opened_at = now()
    local = stream.get_extra_info("client_addr")
    peer = stream.get_extra_info("server_addr")
    conn.local_addr = host_port(str(local[0]), int(local[1])) if local else None
    conn.peer_addr = host_port(str(peer[0]), int(peer[1])) if peer else None


def sync_connect_tcp(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``SyncBackend.connect_tcp``: resolve, then dial each address in turn, as
    ``socket.create_connection`` does untraced."""

    def connect_tcp(self: Any, host: str, port: int, *args: Any, **kw: Any) -> Any:
        st = CURRENT.get()
        if st is None:
            return orig(self, host, port, *args, **kw)
        if is_ip(host):
            ips = [host]
        else:
            st.fire("dns_start", DNSStartInfo(host=host))
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                raise fl.ConnectError(str(exc)) from exc
            ips = _unique_ips(infos)
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        last: BaseException | None = None
        for ip in ips:
            addr = host_port(ip, port)
            st.fire("connect_start", "tcp", addr)
            try:
                stream = orig(self, ip, port, *args, **kw)
            except fl.dial_errors as exc:
                st.fire("connect_done", "tcp", addr, exc)
                last = exc
                continue
            st.fire("connect_done", "tcp", addr, None)
            _connected(st, stream)
            return stream
        assert last is not None
        raise last

    return connect_tcp


def async_connect_tcp(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``AnyIOBackend.connect_tcp``: resolve, then race the addresses like
    ``anyio.connect_tcp`` (see `_HappyEyeballs`)."""

    def connect_tcp(
        self: Any,
        host: str,
        port: int,
        timeout: float | None = None,
        *args: Any,
        **kw: Any,
    ) -> Any:
        st = CURRENT.get()
        if st is None:
            return orig(self, host, port, timeout, *args, **kw)
        return traced(st, self, host, port, timeout, *args, **kw)

    async def traced(
        st: TracedRequest,
        self: Any,
        host: str,
        port: int,
        timeout: float | None,
        *args: Any,
        **kw: Any,
    ) -> Any:
        import anyio

        # The overall dial timeout of the untraced path (anyio.fail_after around
        # the whole connect) applies across the addresses we try.
        deadline = None if timeout is None else now() + timeout
        if is_ip(host):
            ips = [host]
        else:
            st.fire("dns_start", DNSStartInfo(host=host))
            try:
                with anyio.fail_after(timeout):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, TimeoutError) as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                if isinstance(exc, TimeoutError):
                    raise fl.ConnectTimeout(str(exc)) from exc
                raise fl.ConnectError(str(exc)) from exc
            ips = _unique_ips(list(infos))
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        dial = _HappyEyeballs(st, fl, orig, self, port, deadline, args, kw)
        stream = await dial.run(ips)
        _connected(st, stream)
        return stream

    return connect_tcp


class _HappyEyeballs:
    """anyio.connect_tcp's dialing (RFC 6555), one address per attempt, so that each
    attempt gets its own connect_start / connect_done as in Go.

    Same order and timing as the untraced path: the first IPv6 address, then the
    first IPv4 one, then the rest; the next attempt starts when the previous one
    failed or after 250 ms; the first connection wins and the others are cancelled
    (their connect_done carries a ConnectionAbortedError, like Go's "operation was
    canceled").
    """

    def __init__(
        self,
        st: TracedRequest,
        fl: Flavour,
        orig: Callable[..., Any],
        backend: Any,
        port: int,
        deadline: float | None,
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self.st, self.fl, self.orig, self.backend = st, fl, orig, backend
        self.port, self.deadline, self.args, self.kw = port, deadline, args, kw
        self.winner: Any = None
        self.errors: list[BaseException] = []

    @staticmethod
    def order(ips: list[str]) -> list[str]:
        v6 = [ip for ip in ips if ":" in ip]
        v4 = [ip for ip in ips if ":" not in ip]
        if not v6:
            return ips
        first = [v6[0], *v4[:1]]
        return first + [ip for ip in ips if ip not in first]

    async def run(self, ips: list[str]) -> Any:
        import anyio

        if len(ips) == 1:
            # Nothing to race: dial in this task (a task group, a task and a timer
            # per dial would cost a new client's first request a quarter of the
            # instrumentation's work, for nothing).
            stream = await self.dial(ips[0])
            assert stream is not None  # the only dial is always accepted
            return stream
        async with anyio.create_task_group() as group:
            for ip in self.order(ips):
                done = anyio.Event()
                group.start_soon(self.attempt, ip, done, group.cancel_scope)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await done.wait()
        if self.winner is not None:
            return self.winner
        if self.errors:
            raise self.errors[-1]
        # Every attempt was cancelled without the group being cancelled from
        # outside (nothing else raised): say so rather than fail on an empty list.
        addrs = ", ".join(host_port(ip, self.port) for ip in ips)
        raise self.fl.ConnectError(f"every dial attempt was canceled ({addrs})")

    async def dial(self, ip: str, wanted: Callable[[], bool] = lambda: True) -> Any:
        """Dial ``ip`` between its connect_start and connect_done; a connection that
        is not ``wanted`` once made (another attempt won) is closed again, None."""
        import anyio

        addr = host_port(ip, self.port)
        remaining = None if self.deadline is None else self.deadline - now()
        self.st.fire("connect_start", "tcp", addr)
        try:
            stream = await self.orig(
                self.backend, ip, self.port, remaining, *self.args, **self.kw
            )
        except anyio.get_cancelled_exc_class():
            lost = ConnectionAbortedError(f"dial to {addr} canceled")
            self.st.fire("connect_done", "tcp", addr, lost)
            raise
        except self.fl.dial_errors as exc:
            self.st.fire("connect_done", "tcp", addr, exc)
            raise
        if not wanted():  # pragma: no cover - two connects finishing in one tick
            await stream.aclose()
            lost = ConnectionAbortedError(f"dial to {addr} canceled: another won")
            self.st.fire("connect_done", "tcp", addr, lost)
            return None
        self.st.fire("connect_done", "tcp", addr, None)
        return stream

    async def attempt(self, ip: str, done: Any, scope: Any) -> None:
        """One attempt of a race: the first connection made wins and cancels the
        others."""
        try:
            stream = await self.dial(ip, lambda: self.winner is None)
        except self.fl.dial_errors as exc:
            self.errors.append(exc)
            done.set()
            return
        if stream is not None:
            self.winner = stream
            scope.cancel()
        done.set()
