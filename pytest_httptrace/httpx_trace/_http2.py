"""HTTP/2: header fields as h2 puts them on the wire, responses routed to their
request by stream id (first byte, every 1xx), and the causal order of hooks
across the threads and tasks that share a connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.events
from h2.utilities import normalize_outbound_headers

from ..trace import TracedRequest
from ._flavour import Flavour, h2_config, reset_h2_stream
from ._interim import first_byte, got_1xx
from ._state import H2_STREAMS, H2_STREAMS_PENDING, lock, state


def wire_headers(conn: Any, request: Any) -> Callable[[], list[tuple[bytes, bytes]]]:
    """What httpcore's HTTP/2 connection sends, after h2's own normalisation: a
    function that makes it (a recorder calls it when read, off the request's path;
    it holds the fields and h2's settings, not the request or the connection).

    httpcore builds pseudo-headers first, then the fields without Host (it becomes
    ``:authority``) and Transfer-Encoding; h2 then lowercases names and drops
    connection-specific fields (``Connection``, ``Keep-Alive``... RFC 9113 §8.2.2)
    with the connection's own settings. We run the same h2 function.
    """
    headers: list[tuple[bytes, bytes]] = list(request.headers)
    authority = next((v for k, v in headers if k.lower() == b"host"), b"")
    fields = [
        (b":method", request.method),
        (b":authority", authority),
        (b":scheme", request.url.scheme),
        (b":path", request.url.target),
    ] + [
        (k.lower(), v)
        for k, v in headers
        if k.lower() not in (b"host", b"transfer-encoding")
    ]
    config = h2_config(conn) if conn is not None else None
    if config is None or not config.normalize_outbound_headers:
        return lambda: fields
    split = bool(getattr(config, "split_outbound_cookies", False))

    def normalized() -> list[tuple[bytes, bytes]]:
        pairs = normalize_outbound_headers(fields, None, split)
        return [(bytes(k), bytes(v)) for k, v in pairs]

    return normalized


def register_stream(st: TracedRequest, inner: Any, stream_id: int | None) -> None:
    """Route this connection's frames of ``stream_id`` to ``st``."""
    if stream_id is not None and inner is not None:
        with lock:
            H2_STREAMS.setdefault(inner, {})[stream_id] = st


def after_write(st: TracedRequest, action: Callable[[TracedRequest], None]) -> None:
    """Run ``action`` now, or once the request's writer has reported its headers.

    HTTP/2 reads on one thread or task can deliver the response of a stream whose
    writer, on another, has sent its HEADERS but not yet called wrote_headers (or,
    for a request without a body, wrote_request): the bytes went out first, so the
    hooks must say so too.
    """
    s = state(st)
    with lock:
        if not s.h2_written:
            s.deferred.append(action)
            return
    action(st)


def written(st: TracedRequest) -> None:
    """The writer reported what it wrote: run what the readers deferred."""
    s = state(st)
    with lock:
        s.h2_written = True
        deferred, s.deferred = s.deferred, []
    for action in deferred:
        action(st)


def _events(fl: Flavour, conn: Any, events: list[Any]) -> None:
    """Route ``conn``'s h2 events to its traced streams (callers test
    `H2_STREAMS_PENDING` first)."""
    streams = H2_STREAMS.get(conn)
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
                after_write(st, _Interim(fl, conn, event.stream_id, code, headers))
        elif isinstance(event, h2.events.ResponseReceived):
            st = streams.get(event.stream_id)
            if st is not None:
                after_write(st, first_byte)


class _Interim:
    """Deliver one HTTP/2 interim response to its request (resetting the stream if
    the got_1xx_response hook raises, as Go cancels it)."""

    def __init__(
        self,
        fl: Flavour,
        conn: Any,
        stream_id: int,
        code: int,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.fl, self.conn, self.stream_id = fl, conn, stream_id
        self.code, self.headers = code, headers

    def __call__(self, st: TracedRequest) -> None:
        try:
            got_1xx(st, self.code, self.fl.Headers(self.headers))
        except Exception:
            reset_h2_stream(self.fl, self.conn, self.stream_id)


def sync_read_incoming(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    """``HTTP2Connection._read_incoming_data``: the h2 events of every read, routed
    by stream id (httpcore drops informational responses)."""

    def _read_incoming_data(self: Any, request: Any) -> list[Any]:
        events: list[Any] = orig(self, request)
        if H2_STREAMS_PENDING:  # some traced request has a stream somewhere
            _events(fl, self, events)
        return events

    return _read_incoming_data


def async_read_incoming(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
    def _read_incoming_data(self: Any, request: Any) -> Any:
        if not H2_STREAMS_PENDING or not H2_STREAMS.get(self):
            return orig(self, request)
        return traced(self, request)

    async def traced(self: Any, request: Any) -> list[Any]:
        events: list[Any] = await orig(self, request)
        _events(fl, self, events)
        return events

    return _read_incoming_data
