"""Below httpcore's trace events: connections, DNS and dialing, reads (first byte,
1xx on both protocols)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import anyio
import h2.errors
import h2.events
import h11
import httpcore
import httpx

from ..trace import DNSDoneInfo, DNSStartInfo, TracedRequest
from ._core import (
    _CONNS,
    _CURRENT,
    _H2_STREAMS,
    _PUSHBACK,
    _connection_record,
    _first_byte,
    _got_1xx,
    _now,
)
from ._events import _h2_after_write

# -- connections ---------------------------------------------------------------------


def _bind_connection(conn: object) -> None:
    st = _CURRENT.get()
    if st is not None and "proxied" not in st.state.flags:
        st.connection = _connection_record(conn)
        st.state.flags.add("conn_pending")
        if getattr(conn, "_connection", None) is None:
            st.state.flags.add("fresh")
        else:
            st.state.flags.discard("fresh")


def _sync_conn_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        _bind_connection(self)
        return orig(self, request)

    return handle_request


def _async_conn_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    # The async wrappers are plain functions that hand back the original coroutine
    # when the request is not traced: no extra coroutine on an untraced path.
    def handle_async_request(self: Any, request: Any) -> Any:
        _bind_connection(self)
        return orig(self, request)

    return handle_async_request


def _mark_closed(conn: object) -> None:
    record = _CONNS.get(conn)
    if record is not None and record.closed_at is None:
        record.closed_at = _now()


def _sync_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    def close(self: Any) -> None:
        _mark_closed(self)
        orig(self)

    return close


def _async_close(orig: Callable[..., Any]) -> Callable[..., Any]:
    def aclose(self: Any) -> Any:
        _mark_closed(self)
        return orig(self)

    return aclose


# -- DNS and dialing -----------------------------------------------------------------


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _unique_ips(infos: list[Any]) -> list[str]:
    ips: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in ips:
            ips.append(ip)
    return ips


def _connected(st: TracedRequest, stream: Any) -> None:
    conn = st.connection
    if conn is None:
        return
    conn.opened_at = _now()
    local = stream.get_extra_info("client_addr")
    peer = stream.get_extra_info("server_addr")
    conn.local_addr = _addr(str(local[0]), int(local[1])) if local else None
    conn.peer_addr = _addr(str(peer[0]), int(peer[1])) if peer else None


def _sync_connect_tcp(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connect_tcp(self: Any, host: str, port: int, *args: Any, **kw: Any) -> Any:
        st = _CURRENT.get()
        if st is None:
            return orig(self, host, port, *args, **kw)
        if _is_ip(host):
            ips = [host]
        else:
            st.fire("dns_start", DNSStartInfo(host=host))
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                raise httpcore.ConnectError(str(exc)) from exc
            ips = _unique_ips(infos)
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        last: BaseException | None = None
        for ip in ips:
            addr = _addr(ip, port)
            st.fire("connect_start", "tcp", addr)
            try:
                stream = orig(self, ip, port, *args, **kw)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                st.fire("connect_done", "tcp", addr, exc)
                last = exc
                continue
            st.fire("connect_done", "tcp", addr, None)
            _connected(st, stream)
            return stream
        assert last is not None
        raise last

    return connect_tcp


def _async_connect_tcp(orig: Callable[..., Any]) -> Callable[..., Any]:
    def connect_tcp(
        self: Any,
        host: str,
        port: int,
        timeout: float | None = None,
        *args: Any,
        **kw: Any,
    ) -> Any:
        st = _CURRENT.get()
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
        # The overall dial timeout of the untraced path (anyio.fail_after around
        # the whole connect) applies across the addresses we try.
        deadline = None if timeout is None else _now() + timeout
        if _is_ip(host):
            ips = [host]
        else:
            st.fire("dns_start", DNSStartInfo(host=host))
            try:
                with anyio.fail_after(timeout):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, TimeoutError) as exc:
                st.fire("dns_done", DNSDoneInfo(addrs=[], err=exc))
                if isinstance(exc, TimeoutError):
                    raise httpcore.ConnectTimeout(str(exc)) from exc
                raise httpcore.ConnectError(str(exc)) from exc
            ips = _unique_ips(list(infos))
            st.fire("dns_done", DNSDoneInfo(addrs=ips))
        dial = _HappyEyeballs(st, orig, self, port, deadline, args, kw)
        stream = await dial.run(ips)
        _connected(st, stream)
        return stream

    return connect_tcp


#: anyio.connect_tcp's default delay before racing the next address.
HAPPY_EYEBALLS_DELAY = 0.25


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
        orig: Callable[..., Any],
        backend: Any,
        port: int,
        deadline: float | None,
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self.st, self.orig, self.backend, self.port = st, orig, backend, port
        self.deadline, self.args, self.kw = deadline, args, kw
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
        async with anyio.create_task_group() as group:
            for ip in self.order(ips):
                done = anyio.Event()
                group.start_soon(self.attempt, ip, done, group.cancel_scope)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await done.wait()
        if self.winner is None:
            raise self.errors[-1]
        return self.winner

    async def attempt(self, ip: str, done: anyio.Event, scope: Any) -> None:
        addr = _addr(ip, self.port)
        remaining = None if self.deadline is None else self.deadline - _now()
        self.st.fire("connect_start", "tcp", addr)
        try:
            stream = await self.orig(
                self.backend, ip, self.port, remaining, *self.args, **self.kw
            )
        except anyio.get_cancelled_exc_class():
            lost = ConnectionAbortedError(f"dial to {addr} canceled")
            self.st.fire("connect_done", "tcp", addr, lost)
            raise
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            self.st.fire("connect_done", "tcp", addr, exc)
            self.errors.append(exc)
            done.set()
            return
        if self.winner is None:
            self.winner = stream
            self.st.fire("connect_done", "tcp", addr, None)
            scope.cancel()
        else:  # pragma: no cover - two connects finishing in the same tick
            await stream.aclose()
            lost = ConnectionAbortedError(f"dial to {addr} canceled: another won")
            self.st.fire("connect_done", "tcp", addr, lost)
        done.set()


# -- reads: first byte and interim responses -----------------------------------------


def _sync_read(orig: Callable[..., Any]) -> Callable[..., Any]:
    def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = _PUSHBACK.pop(self, b"") if _PUSHBACK else b""
        if not data:
            data = orig(self, max_bytes, timeout)
        st = _CURRENT.get()
        if st is not None and data and "await_first_byte" in st.state.flags:
            _first_byte(st)
        return data

    return read


def _async_read(orig: Callable[..., Any]) -> Callable[..., Any]:
    def read(self: Any, max_bytes: int, timeout: float | None = None) -> Any:
        if not _PUSHBACK and _CURRENT.get() is None:
            return orig(self, max_bytes, timeout)
        return traced(self, max_bytes, timeout)

    async def traced(self: Any, max_bytes: int, timeout: float | None) -> bytes:
        data: bytes = _PUSHBACK.pop(self, b"") if _PUSHBACK else b""
        if not data:
            data = await orig(self, max_bytes, timeout)
        st = _CURRENT.get()
        if st is not None and data and "await_first_byte" in st.state.flags:
            _first_byte(st)
        return data

    return read


def _h11_interim(event: Any) -> None:
    if type(event) is h11.InformationalResponse and event.status_code != 101:
        st = _CURRENT.get()
        if st is not None:
            headers = httpx.Headers(list(event.headers.raw_items()))
            _got_1xx(st, event.status_code, headers)


def _sync_receive_event(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _receive_event(self: Any, timeout: float | None = None) -> Any:
        event = orig(self, timeout)
        _h11_interim(event)
        return event

    return _receive_event


def _async_receive_event(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _receive_event(self: Any, timeout: float | None = None) -> Any:
        if _CURRENT.get() is None:
            return orig(self, timeout)
        return traced(self, timeout)

    async def traced(self: Any, timeout: float | None) -> Any:
        event = await orig(self, timeout)
        _h11_interim(event)
        return event

    return _receive_event


def _h2_events(conn: Any, events: list[Any]) -> None:
    streams = _H2_STREAMS.get(conn)
    if not streams:
        return
    for event in events:
        if isinstance(event, h2.events.InformationalResponseReceived):
            st = streams.get(event.stream_id)
            if st is None:
                continue
            code = 0
            headers: list[tuple[bytes, bytes]] = []
            for k, v in event.headers or ():
                k, v = bytes(k), bytes(v)
                if k == b":status":
                    code = int(v)
                elif not k.startswith(b":"):
                    headers.append((k, v))
            if code != 101:
                _h2_after_write(st, _H2Interim(conn, event.stream_id, code, headers))
        elif isinstance(event, h2.events.ResponseReceived):
            st = streams.get(event.stream_id)
            if st is not None:
                _h2_after_write(st, _first_byte)


class _H2Interim:
    """Deliver one HTTP/2 interim response to its request (resetting the stream if
    the got_1xx_response hook raises, as Go cancels it)."""

    def __init__(
        self, conn: Any, stream_id: int, code: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.conn, self.stream_id, self.code, self.headers = (
            conn,
            stream_id,
            code,
            headers,
        )

    def __call__(self, st: TracedRequest) -> None:
        try:
            _got_1xx(st, self.code, httpx.Headers(self.headers))
        except Exception:
            _abort_h2_stream(self.conn, self.stream_id)


def _abort_h2_stream(conn: Any, stream_id: int) -> None:
    """Reset a stream whose got_1xx_response hook raised (Go cancels the stream) and
    make its reader fail; the other streams of the connection go on."""
    conn._h2_state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
    reset = h2.events.StreamReset(
        stream_id=stream_id, error_code=h2.errors.ErrorCodes.CANCEL, remote_reset=False
    )
    pending = conn._events.get(stream_id)
    if pending is not None:
        pending.append(reset)


def _sync_read_incoming(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _read_incoming_data(self: Any, request: Any) -> list[Any]:
        events: list[Any] = orig(self, request)
        _h2_events(self, events)
        return events

    return _read_incoming_data


def _async_read_incoming(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _read_incoming_data(self: Any, request: Any) -> Any:
        if not _H2_STREAMS.get(self):
            return orig(self, request)
        return traced(self, request)

    async def traced(self: Any, request: Any) -> list[Any]:
        events: list[Any] = await orig(self, request)
        _h2_events(self, events)
        return events

    return _read_incoming_data
