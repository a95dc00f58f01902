"""The opt-in waiting mode for ``100 Continue`` (the one mode that changes what the
client does on the wire)."""

from __future__ import annotations

import contextvars
from typing import Any

from ..trace import TracedRequest
from ._flavour import inner_connection, network_stream
from ._interim import first_byte, got_1xx
from ._state import PUSHBACK, now, state

#: The opt-in waiting mode: seconds to wait for 100 Continue, or None (off).
_WAIT_FOR_CONTINUE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pytest_httptrace_wait_for_continue", default=None
)
_wait_default: float | None = None


# -- the opt-in waiting mode for 100 Continue ---------------------------------------


def wait_for_100_continue(timeout: float = 1.0) -> _WaitMode:
    """Make httpx wait for ``100 Continue`` before sending a body (opt-in).

    **This changes what the client does on the wire** — stock httpx never waits. Use
    it to test a *server's* ``Expect: 100-continue`` handling with a client that
    behaves like Go's. Inside the block (sync or async, traced or not), an HTTP/1.1
    request with ``Expect: 100-continue`` and a body sends its headers, calls
    ``wait_100_continue``, then holds the body until a ``100`` arrives (body sent), a
    final response arrives (body never sent, connection closed afterwards), or
    ``timeout`` seconds pass (body sent, like Go's ``ExpectContinueTimeout``).
    Per request: ``extensions={"wait_for_100_continue": seconds}``. HTTP/2 requests
    are not held (their body is sent at once, as stock httpx does).

    Example::

        with wait_for_100_continue(timeout=0.5):
            client.post(url, content=b"x" * 10_000,
                        headers={"Expect": "100-continue"})
    """
    return _WaitMode(timeout)


class _WaitMode:
    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds: {timeout}")
        self._timeout = timeout
        self._token: contextvars.Token[float | None] | None = None

    def __enter__(self) -> None:
        from ..trace import _acquire_sources

        _acquire_sources()
        self._token = _WAIT_FOR_CONTINUE.set(self._timeout)

    def __exit__(self, *exc_info: object) -> None:
        from ..trace import _release_sources

        assert self._token is not None
        _WAIT_FOR_CONTINUE.reset(self._token)
        self._token = None
        _release_sources()

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


def wait_default() -> float | None:
    """The process-wide waiting mode's timeout, or None when it is off."""
    return _wait_default


def set_wait_default(timeout: float | None) -> None:
    """Process-wide waiting mode (the pytest marker / ini use it); None turns it off."""
    global _wait_default
    _wait_default = timeout


def _wait_timeout(request: Any) -> float | None:
    value = request.extensions.get("wait_for_100_continue")
    if value is True:
        return 1.0
    if isinstance(value, (int, float)) and value:
        return float(value)
    if value is False:
        return None
    timeout = _WAIT_FOR_CONTINUE.get()
    return timeout if timeout is not None else _wait_default


def should_wait(st: TracedRequest, request: Any) -> bool:
    """Whether the waiting mode holds this request's body back."""
    if not state(st).expect_continue or _wait_timeout(request) is None:
        return False
    for key, value in request.headers:
        k = key.lower()
        if k == b"transfer-encoding" or (k == b"content-length" and value != b"0"):
            return True
    return False


class _ContinueWaiter:
    """One held body: reads ahead, parses response heads, decides what to do.

    The two loops below (sync and async) only read; everything else is here.
    """

    def __init__(self, st: TracedRequest, request: Any, stream: Any, timeout: float):
        self.st, self.request, self.stream = st, request, stream
        self.deadline = now() + timeout
        self.buffer = b""
        self.decision: str | None = None  # "send" or "withhold"
        st.fire("wait_100_continue")

    @classmethod
    def start(cls, st: TracedRequest, request: Any) -> _ContinueWaiter | None:
        timeout = _wait_timeout(request)
        stream = _network_stream(st)
        if stream is None or timeout is None:
            state(st).hold_body = False
            return None
        return cls(st, request, stream, timeout)

    def remaining(self) -> float:
        return self.deadline - now() if self.decision is None else 0.0

    def feed(self, data: bytes) -> None:
        """Take bytes read ahead (b"" at end of stream)."""
        if not data:
            self.decision = "send"  # the server closed: let httpcore find out
            return
        if not self.buffer:
            first_byte(self.st)
        self.buffer += data
        while self.decision is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            parts = head[0].split(" ", 2)
            try:
                code = int(parts[1])
                fields = [line.split(":", 1) for line in head[1:]]
                pairs = [(k.strip(), v.strip()) for k, v in fields]
                headers = state(self.st).flavour.Headers(pairs)
            except (IndexError, ValueError):
                self.decision = "send"  # malformed: h11 will raise a clear error
                return
            if not 100 <= code < 200 or code == 101:
                self.decision = "withhold"
                return
            self.buffer = self.buffer[end + 4 :]  # h11 never sees this interim head
            got_1xx(self.st, code, headers)
            if code == 100:
                self.decision = "send"

    def finish(self, *, is_async: bool) -> None:
        """Hand the read-ahead back to h11; withhold the body if so decided."""
        state(self.st).hold_body = False
        if self.buffer:
            PUSHBACK[self.stream] = self.buffer
        if self.decision == "withhold":
            _withhold(self.st, self.request, is_async=is_async)


def _withhold(st: TracedRequest, request: Any, *, is_async: bool) -> None:
    s = state(st)
    s.body_withheld = True
    error = s.flavour.WriteError(
        "body withheld: the server sent a final response before 100 Continue"
    )

    def refuse() -> Any:
        raise error
        yield b""  # pragma: no cover

    async def arefuse() -> Any:
        raise error
        yield b""  # pragma: no cover

    request.stream = arefuse() if is_async else refuse()


def _network_stream(st: TracedRequest) -> Any:
    """The request's stream if the waiting mode can hold its body: only sync and
    anyio streams, whose reads hand the read-ahead back to h11 (not trio's)."""
    conn = st.connection
    stream = network_stream(inner_connection(conn.conn)) if conn else None
    return stream if isinstance(stream, state(st).flavour.held_streams) else None


def wait_for_continue(st: TracedRequest, request: Any) -> None:
    """Hold the body (sync): read until 100, a final response, or the timeout."""
    waiter = _ContinueWaiter.start(st, request)
    if waiter is None:
        return
    timeout = state(st).flavour.ReadTimeout
    try:
        while (remaining := waiter.remaining()) > 0:
            try:
                waiter.feed(waiter.stream.read(65536, remaining))
            except timeout:
                break
    finally:
        waiter.finish(is_async=False)


async def await_continue(st: TracedRequest, request: Any) -> None:
    """Hold the body (async), as `wait_for_continue`."""
    waiter = _ContinueWaiter.start(st, request)
    if waiter is None:
        return
    timeout = state(st).flavour.ReadTimeout
    try:
        while (remaining := waiter.remaining()) > 0:
            try:
                waiter.feed(await waiter.stream.read(65536, remaining))
            except timeout:
                break
    finally:
        waiter.finish(is_async=True)
