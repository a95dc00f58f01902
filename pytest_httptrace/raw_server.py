"""A scripted server over raw TCP (TLS by default), for what hypercorn will not do.

hypercorn sends no 1xx on HTTP/1.1 (except its own ``100 Continue``), cannot answer
without ``100 Continue``, and never misbehaves on purpose. This server does exactly what
a script says, one list of steps per connection, and records what it received, byte for
byte. Usable with or without pytest (``httptrace_raw_server`` is the fixture).

Example: a ``103 Early Hints`` over HTTP/1.1, then the same client's next request on a
connection the server has closed meanwhile (a stale keep-alive)::

    from pytest_httptrace.raw_server import Close, ReadHead, Send, start_raw_server

    with start_raw_server() as raw:
        raw.script(
            [   # connection 0
                ReadHead(),
                Send.interim(103, {"Link": "</style.css>; rel=preload"}),
                Send.response(200, "hello"),
                Close(),
            ],
            [ReadHead(), Send.response(200, "again")],  # connection 1
        )
        with raw.client() as client:
            assert client.get("/").text == "hello"
            raw.wait(1)  # connection 0 has run its script: it is closed
            assert client.get("/").text == "again"
        assert raw.received[0].startswith(b"GET / HTTP/1.1\\r\\n")

Steps: `ReadHead`, `ReadBody`, `Drain` read; `Send` writes (`Send.response`,
`Send.interim` build the bytes); `Sleep` pauses; `Close` closes gracefully and `Reset`
with a TCP RST (both end a script). A TLS server does the handshake before the first
step, or where the script puts `Handshake`: ``[Sleep(0.5), Handshake(), ...]`` is a
server slow to answer the ClientHello (a TLS or connect timeout, a dial that a closed
pool or a cancelled call overtakes). A connection whose script ends otherwise stays
open, still recording, until the client closes it or the test ends. A read step that
cannot complete (the client closed, or `timeout` passed) stops that connection's script
and is reported by `RawServer.check` (the fixture calls it after each test), as is a
connection nobody scripted.
"""

from __future__ import annotations

import contextlib
import math
import re
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING

from ._certs import server_ssl_context
from .server import THREAD_TIMEOUT, _Endpoint, bind_loopback

if TYPE_CHECKING:
    import trustme
    from typing_extensions import Self

__all__ = [
    "Close",
    "Drain",
    "Handshake",
    "RawConnection",
    "RawScriptError",
    "RawServer",
    "ReadBody",
    "ReadHead",
    "Reset",
    "Send",
    "Sleep",
    "Step",
    "start_raw_server",
]

#: Default time a read step waits for the client.
READ_TIMEOUT = 5.0
_RECV_SIZE = 65536
Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def _is_seconds(value: object, *, zero: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and (value > 0 or (zero and value == 0))


def _check_seconds(step: object, name: str, value: object, *, zero: bool) -> None:
    if not _is_seconds(value, zero=zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(
            f"{type(step).__name__}({name}=...) must be a number of seconds {bound}, "
            f"got {value!r}"
        )


@dataclass(frozen=True)
class ReadHead:
    """Read the request head, through the blank line that ends it."""

    timeout: float = READ_TIMEOUT

    def __post_init__(self) -> None:
        _check_seconds(self, "timeout", self.timeout, zero=False)


@dataclass(frozen=True)
class ReadBody:
    """Read the request body: `size` bytes, or as the last head says.

    With no `size`: ``Content-Length`` bytes, or for ``Transfer-Encoding: chunked`` up
    to the last chunk (``0\\r\\n\\r\\n``; trailers are not supported), or nothing.
    """

    size: int | None = None
    timeout: float = READ_TIMEOUT

    def __post_init__(self) -> None:
        if self.size is not None and (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or self.size < 0
        ):
            raise ValueError(
                f"ReadBody(size=...) must be an int >= 0, got {self.size!r}"
            )
        _check_seconds(self, "timeout", self.timeout, zero=False)


@dataclass(frozen=True)
class Drain:
    """Read whatever arrives for `seconds` (less if the client closes). Never fails.

    The way to see whether a client sends something it should not, e.g. a body after a
    final response that came without ``100 Continue``.
    """

    seconds: float

    def __post_init__(self) -> None:
        _check_seconds(self, "seconds", self.seconds, zero=True)


@dataclass(frozen=True)
class Send:
    """Write `data` as is: well-formed or not, a whole response or a piece of one."""

    data: bytes

    def __post_init__(self) -> None:
        if isinstance(self.data, (bytearray, memoryview)):
            object.__setattr__(self, "data", bytes(self.data))
        elif isinstance(self.data, str):
            raise TypeError(
                f"Send() takes bytes, got str {self.data[:40]!r}: write b'...', "
                "or build a response with Send.response(...)"
            )
        elif not isinstance(self.data, bytes):
            raise TypeError(f"Send() takes bytes, got {self.data!r}")

    @classmethod
    def response(
        cls,
        status: int = 200,
        body: bytes | str = b"",
        headers: Headers = (),
        *,
        reason: str | None = None,
        content_length: bool = True,
    ) -> Send:
        """An HTTP/1.1 response; ``Content-Length`` is added unless `headers` has one.

        ``Send.response(417, headers={"Connection": "close"})``. `content_length=False`
        leaves it out (a body delimited by closing the connection).
        """
        data = body.encode() if isinstance(body, str) else bytes(body)
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        names = {name.lower() for name, _ in pairs}
        if content_length and not names & {"content-length", "transfer-encoding"}:
            pairs.append(("Content-Length", str(len(data))))
        return cls(_head(status, pairs, reason) + data)

    @classmethod
    def interim(
        cls, status: int, headers: Headers = (), *, reason: str | None = None
    ) -> Send:
        """A 1xx response head: ``Send.interim(103, {"Link": "</a.css>"})``."""
        if not (isinstance(status, int) and 100 <= status <= 199):
            raise ValueError(f"Send.interim() takes a 1xx status, got {status!r}")
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        return cls(_head(status, pairs, reason))


def _head(status: int, headers: Sequence[tuple[str, str]], reason: str | None) -> bytes:
    if reason is None:
        reason = (
            HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        )
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Sleep:
    """Pause for `seconds` (responses in pieces, a slow server)."""

    seconds: float

    def __post_init__(self) -> None:
        _check_seconds(self, "seconds", self.seconds, zero=True)


@dataclass(frozen=True)
class Handshake:
    """Do the TLS handshake here (a TLS server otherwise does it before the first
    step). Only `Sleep` may come before it: the client waits on its ClientHello."""


@dataclass(frozen=True)
class Close:
    """Close gracefully (TLS ``close_notify``, then FIN). Ends the script.

    The server still records what arrives until the client closes its side.
    """


@dataclass(frozen=True)
class Reset:
    """Abort the connection with a TCP RST (``SO_LINGER`` 0). Ends the script."""


Step = ReadHead | ReadBody | Drain | Send | Sleep | Handshake | Close | Reset
_STEP_TYPES = (ReadHead, ReadBody, Drain, Send, Sleep, Handshake, Close, Reset)


def _validate_script(index: int, steps: object) -> tuple[Step, ...]:
    where = f"script() connection {index}"
    if isinstance(steps, _STEP_TYPES):
        raise TypeError(
            f"{where}: got the step {steps!r}; script() takes one *list* of steps per "
            f"connection: raw.script([ReadHead(), Send.response(200)])"
        )
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise TypeError(f"{where}: expected a list of steps, got {steps!r}")
    for position, step in enumerate(steps):
        if isinstance(step, type) and issubclass(step, _STEP_TYPES):
            raise TypeError(
                f"{where}, step {position}: got the class {step.__name__}; "
                f"write {step.__name__}()"
            )
        if not isinstance(step, _STEP_TYPES):
            names = ", ".join(t.__name__ for t in _STEP_TYPES)
            raise TypeError(
                f"{where}, step {position}: {step!r} is not a step ({names})"
            )
        if isinstance(step, (Close, Reset)) and position != len(steps) - 1:
            raise ValueError(
                f"{where}, step {position}: {type(step).__name__}() must be the last "
                f"step, but {len(steps) - position - 1} more follow"
            )
    handshakes = [i for i, step in enumerate(steps) if isinstance(step, Handshake)]
    if len(handshakes) > 1:
        raise ValueError(
            f"{where}: Handshake() at steps {handshakes}; a connection has one"
        )
    for position, step in enumerate(steps[: handshakes[0]] if handshakes else ()):
        if not isinstance(step, Sleep):
            raise ValueError(
                f"{where}, step {position}: {step!r} before Handshake(); only Sleep() "
                "may come before it (nothing can be read or written before the "
                "handshake)"
            )
    return tuple(steps)


class RawScriptError(Exception):
    """A connection did not go as scripted (reported after the test)."""


class RawConnection:
    """One accepted connection: what it received and how far its script got."""

    def __init__(
        self, index: int, client_addr: tuple[str, int], steps: tuple[Step, ...] | None
    ) -> None:
        #: Position in accept order, which is also the position of its script.
        self.index = index
        self.client_addr = client_addr
        self.steps = steps
        self.tls_version: str | None = None
        self.alpn: str | None = None
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        #: How many steps ran to completion.
        self.steps_done = 0
        #: Why the script stopped early (a failed read, the client gone), or None.
        self.error: str | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._finished = threading.Event()

    @property
    def received(self) -> bytes:
        """Every byte received so far (after TLS decryption), in order."""
        with self._lock:
            return bytes(self._buffer)

    @property
    def finished(self) -> bool:
        """The script ran to its end, or stopped at an error."""
        return self._finished.is_set()

    def _append(self, data: bytes) -> None:
        with self._lock:
            self._buffer += data

    def __repr__(self) -> str:
        state = "finished" if self.finished else "running"
        return (
            f"<RawConnection {self.index} {state}, {self.steps_done} steps done, "
            f"{len(self._buffer)} bytes received, error={self.error!r}>"
        )


class _Stopped(Exception):
    """The server is resetting or stopping: leave the connection."""


class _StepFailed(Exception):
    """A read step could not complete."""


_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding:.*chunked", re.I | re.M)


class _Runner:
    """Runs one connection's script in its own thread."""

    def __init__(
        self,
        conn: RawConnection,
        sock: socket.socket,
        context: ssl.SSLContext | None,
    ) -> None:
        self.conn = conn
        self.sock = sock
        self.context = context
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # guards `sock` against `interrupt`
        self._closed = False
        self._cursor = 0  # bytes of the buffer consumed by read steps
        self._last_head = b""
        self.thread = threading.Thread(
            target=self.run, name=f"httptrace-raw-conn-{conn.index}", daemon=True
        )

    # -- control, from other threads

    def interrupt(self) -> None:
        """Wake the runner wherever it blocks, and make it leave."""
        self.stopping.set()
        with self._lock:
            if not self._closed:
                with contextlib.suppress(OSError):
                    # The base method: SSLSocket.shutdown would also drop its TLS state
                    # under the runner's feet.
                    socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    # -- the runner thread

    def run(self) -> None:
        conn = self.conn
        try:
            if conn.steps is not None:
                if not any(isinstance(step, Handshake) for step in conn.steps):
                    self._handshake()
                for step in conn.steps:
                    self._do(step)
                    conn.steps_done += 1
        except _Stopped:
            pass
        except _StepFailed as failure:
            conn.error = str(failure)
        except OSError as error:
            if not self.stopping.is_set():
                conn.error = self._where(f"{type(error).__name__}: {error}")
        finally:
            conn._finished.set()
        try:
            self._linger()
        finally:
            self._close()

    def _where(self, text: str) -> str:
        steps = self.conn.steps or ()
        done = self.conn.steps_done
        step = (
            f"step {done} {steps[done]!r}" if done < len(steps) else "after the script"
        )
        return f"connection {self.conn.index}, {step}: {text}"

    def _handshake(self) -> None:
        if self.context is None:
            return
        with self._lock:
            self.sock = self.context.wrap_socket(
                self.sock, server_side=True, do_handshake_on_connect=False
            )
        assert isinstance(self.sock, ssl.SSLSocket)
        self.sock.settimeout(READ_TIMEOUT)
        try:
            self.sock.do_handshake()
        except (OSError, ValueError) as error:
            if self.stopping.is_set():
                raise _Stopped() from None
            raise _StepFailed(self._where(f"TLS handshake failed: {error}")) from None
        self.conn.tls_version = self.sock.version()
        self.conn.alpn = self.sock.selected_alpn_protocol()

    def _recv(self, deadline: float) -> bytes | None:
        """Bytes from the client, b"" at its EOF, None when `deadline` has passed."""
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return None
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            data = None
        except ssl.SSLError as error:
            if self.stopping.is_set():
                raise _Stopped() from None
            raise _StepFailed(self._where(f"TLS error: {error}")) from None
        if self.stopping.is_set():
            raise _Stopped()
        if data:
            self.conn._append(data)
        return data

    def _read_until(self, done: int | bytes, step: ReadHead | ReadBody) -> int:
        """Read until `done` bytes are unconsumed, or `done` (a marker) arrived.

        Returns the end offset of what the step consumes.
        """
        deadline = time.monotonic() + step.timeout
        while True:
            buffer = self.conn.received
            if isinstance(done, int):
                if len(buffer) - self._cursor >= done:
                    return self._cursor + done
            else:
                found = buffer.find(done, self._cursor)
                if found >= 0:
                    return found + len(done)
            data = self._recv(deadline)
            pending = len(self.conn.received) - self._cursor
            if data is None:
                raise _StepFailed(
                    self._where(
                        f"nothing more after {step.timeout}s ({pending} unread bytes)"
                    )
                )
            if not data:
                raise _StepFailed(
                    self._where(
                        f"the client closed the connection ({pending} unread bytes)"
                    )
                )

    def _do(self, step: Step) -> None:
        if isinstance(step, ReadHead):
            end = self._read_until(b"\r\n\r\n", step)
            self._last_head = self.conn.received[self._cursor : end]
            self._cursor = end
        elif isinstance(step, ReadBody):
            if step.size is not None:
                self._cursor = self._read_until(step.size, step)
            elif _CHUNKED.search(self._last_head):
                self._cursor = self._read_until(b"0\r\n\r\n", step)
            else:
                match = _CONTENT_LENGTH.search(self._last_head)
                self._cursor = self._read_until(int(match[1]) if match else 0, step)
        elif isinstance(step, Drain):
            deadline = time.monotonic() + step.seconds
            while (data := self._recv(deadline)) is not None and data:
                pass
            self._cursor = len(self.conn.received)
        elif isinstance(step, Send):
            self.sock.settimeout(READ_TIMEOUT)
            self.sock.sendall(step.data)
        elif isinstance(step, Sleep):
            if self.stopping.wait(step.seconds):
                raise _Stopped()
        elif isinstance(step, Handshake):
            self._handshake()
        elif isinstance(step, Close):
            self._close_gracefully()
        elif isinstance(step, Reset):
            with self._lock:
                self.sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self._closed = True
                self.sock.close()
            self.conn.closed_at = time.monotonic()

    def _close_gracefully(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            self.sock.setblocking(False)
            # Sends close_notify; raises at once instead of waiting for the client's.
            with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                self.sock.unwrap()
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def _linger(self) -> None:
        """Keep recording until the client closes (or the server resets or stops).

        Also avoids closing with unread bytes, which would send a RST that can destroy
        a response the client has not read yet.
        """
        if self._closed or self.conn.steps is None:
            return
        with contextlib.suppress(_Stopped, _StepFailed, OSError, ValueError):
            while self._recv(time.monotonic() + 3600.0):
                pass

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.sock.close()
                self.conn.closed_at = time.monotonic()


class RawServer(_Endpoint):
    """A scripted HTTP/1.1 server on loopback; make one with `start_raw_server`.

    Declare the script before the client connects: `script` takes one list of steps
    per connection, in accept order. See the module docstring for a worked example.
    """

    __test__ = False

    def __init__(
        self,
        *,
        tls: bool = True,
        ca: trustme.CA | None = None,
        alpn_protocols: Sequence[str] = ("http/1.1",),
    ) -> None:
        super().__init__(tls=tls, ca=ca)
        self._alpn = tuple(alpn_protocols)
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._scripts: list[tuple[Step, ...]] = []
        self._connections: list[RawConnection] = []
        self._runners: list[_Runner] = []
        #: Scripts whose unreached steps `check` has reported.
        self._reported: set[int] = set()
        self._listeners: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- per test

    def script(self, *connections: Sequence[Step]) -> None:
        """Script the next connections: one list of steps each, in accept order.

        ``raw.script([ReadHead(), Send.response(204)], [ReadHead(), Reset()])``: the
        first connection gets a 204, the second is reset once its head is read. Called
        again, it scripts the connections after those. Bad steps raise here.
        """
        with self._lock:
            start = len(self._scripts)
        checked = [_validate_script(start + i, s) for i, s in enumerate(connections)]
        if not self.tls:
            for i, steps in enumerate(checked):
                if any(isinstance(step, Handshake) for step in steps):
                    raise ValueError(
                        f"script() connection {start + i}: Handshake() on a server "
                        "without TLS (start_raw_server(tls=True), or the "
                        "httptrace_raw_server fixture)"
                    )
        with self._lock:
            self._scripts.extend(checked)

    @property
    def connections(self) -> list[RawConnection]:
        """Accepted connections, in accept order (a copy)."""
        with self._lock:
            return list(self._connections)

    @property
    def received(self) -> list[bytes]:
        """What each connection received so far, in accept order."""
        return [conn.received for conn in self.connections]

    def wait(
        self, count: int | None = None, timeout: float = 5.0
    ) -> list[RawConnection]:
        """Wait until `count` connections (default: every one scripted) have finished
        their scripts (or stopped at an error); return all connections.

        Raises `TimeoutError` if they have not after `timeout` seconds.
        """
        with self._lock:
            want = len(self._scripts) if count is None else count
        deadline = time.monotonic() + timeout
        while True:
            conns = self.connections
            if len(conns) >= want and all(c._finished.is_set() for c in conns[:want]):
                return conns
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{want} scripted connections not done after {timeout}s: {conns}"
                )
            waiting = next((c for c in conns[:want] if not c._finished.is_set()), None)
            if waiting is not None:
                waiting._finished.wait(min(remaining, 0.5))
            else:
                time.sleep(min(remaining, 0.002))

    def pop_errors(self) -> list[str]:
        """Take the errors so far: failed read steps, connections nobody scripted."""
        errors = []
        for conn in self.connections:
            if conn.error is not None:
                errors.append(conn.error)
                conn.error = None
        return errors

    def check(self, *, grace: float = 1.0) -> None:
        """Raise `RawScriptError` if a connection did not go as scripted.

        Besides the errors of `pop_errors`, a scripted step never reached is one: a
        script whose connection never arrived, or a connection whose script had not
        finished (after up to `grace` seconds for it to finish). The fixture calls
        this after each test; each problem is reported once.
        """
        errors = self.pop_errors() + self._unreached(grace)
        if errors:
            raise RawScriptError("\n".join(errors))

    def _unreached(self, grace: float) -> list[str]:
        """Scripted steps that did not run: see `check`."""
        with self._lock:
            scripts = list(self._scripts)
        deadline = time.monotonic() + grace
        for conn in self.connections:
            conn._finished.wait(max(0.0, deadline - time.monotonic()))
        conns = self.connections
        problems = []
        for index, steps in enumerate(scripts):
            if index in self._reported or not steps:
                continue
            if index >= len(conns):
                problems.append(
                    f"script {index} ({_steps_text(steps)}) never ran: "
                    f"{_count(len(conns), 'connection')} arrived, "
                    f"{len(scripts)} scripted; step 0 {_clip(steps[0])} was never "
                    "reached"
                )
            elif not conns[index].finished:
                done = conns[index].steps_done
                problems.append(
                    f"connection {index}, step {done} {_clip(steps[done])}: not done "
                    f"when the test ended ({done} of {len(steps)} steps ran; script "
                    f"{index}: {_steps_text(steps)})"
                )
            else:
                continue
            self._reported.add(index)
        return problems

    def reset(self) -> None:
        """Drop every connection and forget scripts and records (fixture teardown)."""
        with self._lock:
            runners, self._runners = self._runners, []
            self._scripts.clear()
            self._connections.clear()
            self._reported.clear()
        for runner in runners:
            runner.interrupt()
        for runner in runners:
            runner.thread.join(THREAD_TIMEOUT)

    # -- lifecycle

    def _start(self) -> None:
        if self.tls:
            self._context = server_ssl_context(self.ca, alpn_protocols=self._alpn)
        self._listeners = bind_loopback(self.host)
        self.port = self._listeners[0].getsockname()[1]
        for sock in self._listeners:
            sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._accept_loop,
            name=f"httptrace-raw-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self._listeners:
                selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r or self._stopping.is_set():
                        continue
                    listener = key.fileobj
                    assert isinstance(listener, socket.socket)
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        self._accepted(*listener.accept())

    def _accepted(self, sock: socket.socket, address: tuple[str, int]) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            index = len(self._connections)
            steps = self._scripts[index] if index < len(self._scripts) else None
            conn = RawConnection(index, (address[0], address[1]), steps)
            if steps is None:
                conn.error = (
                    f"connection {index}: nobody scripted it "
                    f"({len(self._scripts)} connections scripted); closed at once"
                )
            self._connections.append(conn)
            runner = _Runner(conn, sock, self._context)
            self._runners.append(runner)
            runner.thread.start()  # under the lock: `reset` joins what it finds

    def stop(self) -> None:
        """Stop accepting, drop every connection, join every thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake_w.send(b"x")
        self._thread.join(THREAD_TIMEOUT)
        self._thread = None
        self.reset()
        for sock in self._listeners:
            sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<RawServer {self.scheme}://{self.host}:{self.port} {state}>"


def _clip(step: Step, limit: int = 60) -> str:
    text = repr(step)
    return text if len(text) <= limit else text[: limit - 4] + "...)"


def _steps_text(steps: Sequence[Step]) -> str:
    return ", ".join(type(step).__name__ for step in steps)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def start_raw_server(
    *,
    tls: bool = True,
    ca: trustme.CA | None = None,
    alpn_protocols: Sequence[str] = ("http/1.1",),
) -> RawServer:
    """Start a `RawServer` (TLS unless `tls` is False) and return it, listening.

    `ca` signs its certificate (a new trustme CA if None); `alpn_protocols` is what it
    offers in the TLS handshake. Use it as a context manager, or call `RawServer.stop`.
    """
    server = RawServer(tls=tls, ca=ca, alpn_protocols=alpn_protocols)
    server._start()
    return server
