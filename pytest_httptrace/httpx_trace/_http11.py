"""HTTP/1.1: the first response byte (a tap on the stream's reads) and interim
responses (``h11.InformationalResponse`` events), sync and async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h11

from ._flavour import Flavour
from ._interim import first_byte, got_1xx
from ._state import CURRENT, PUSHBACK, PUSHBACK_PENDING


def _tap(data: bytes) -> None:
    st = CURRENT.get()
    if st is not None and data and st.state.await_first_byte:
        first_byte(st)


_current = CURRENT.get


def sync_read(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``SyncStream.read``: serves bytes the waiting mode read ahead, then the
    socket; the first byte read while a response is awaited is the first byte."""

    def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = PUSHBACK.pop(self, b"") if PUSHBACK_PENDING else b""
        if not data:
            data = orig(self, max_bytes, timeout)
        st = _current()  # `_tap`, inline: every read of every connection passes here
        if st is not None and data and st.state.await_first_byte:
            first_byte(st)
        return data

    return read


def async_read(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``AnyIOStream.read``, as `sync_read` (the original coroutine when there is
    nothing to tap)."""

    def read(self: Any, max_bytes: int, timeout: float | None = None) -> Any:
        if not PUSHBACK_PENDING and CURRENT.get() is None:
            return orig(self, max_bytes, timeout)
        return traced(self, max_bytes, timeout)

    async def traced(self: Any, max_bytes: int, timeout: float | None) -> bytes:
        data: bytes = PUSHBACK.pop(self, b"") if PUSHBACK_PENDING else b""
        if not data:
            data = await orig(self, max_bytes, timeout)
        _tap(data)
        return data

    return read


def _interim(fl: Flavour, event: Any) -> None:
    if type(event) is h11.InformationalResponse and event.status_code != 101:
        st = CURRENT.get()
        if st is not None:
            headers = fl.Headers(list(event.headers.raw_items()))
            got_1xx(st, event.status_code, headers)


def sync_receive_event(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``HTTP11Connection._receive_event``: every 1xx but 101 reaches the hooks
    (httpcore skips them silently)."""

    informational = h11.InformationalResponse

    def _receive_event(self: Any, timeout: float | None = None) -> Any:
        event = orig(self, timeout)
        if type(event) is informational:  # checked here: on every h11 event
            _interim(fl, event)
        return event

    return _receive_event


def async_receive_event(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    def _receive_event(self: Any, timeout: float | None = None) -> Any:
        if CURRENT.get() is None:
            return orig(self, timeout)
        return traced(self, timeout)

    informational = h11.InformationalResponse

    async def traced(self: Any, timeout: float | None) -> Any:
        event = await orig(self, timeout)
        if type(event) is informational:
            _interim(fl, event)
        return event

    return _receive_event


def wire_headers(request: Any) -> list[tuple[bytes, bytes]]:
    """The request's header fields as h11 writes them: as given, in order."""
    return list(request.headers)
