"""A request's phases, in-flight interval, release and leak state: defined once.

The assertions, the waterfall, the HTML report and the leak check all ask these
questions; they all get their answer here, so a failure message and a waterfall of
the same request never disagree. Everything is derived from the hook calls (names,
arguments, times) and the request's start, return and close times, never from a
client library: the same rules hold for every source.

=============  ================================  =====================================
phase          from                              to
=============  ================================  =====================================
``blocked``    ``get_conn``                      the first of ``dns_start``,
                                                 ``connect_start``,
                                                 ``tls_handshake_start``, ``got_conn``
                                                 (waiting for a pooled connection or a
                                                 free slot, before any dial)
``dns``        ``dns_start``                     ``dns_done``
``connect``    ``connect_start``                 ``connect_done`` (one phase per
                                                 address tried)
``tls``        ``tls_handshake_start``           ``tls_handshake_done``
``send``       ``got_conn``                      ``wrote_request`` (``wrote_headers``
                                                 when the first response byte came
                                                 before the body was written)
``wait``       ``wrote_request``                 ``got_first_response_byte``
``receive``    ``got_first_response_byte``       the response was closed (or, if it
                                                 never was, the call returned)
=============  ================================  =====================================

A phase that did not happen is absent (no ``dns`` for an IP address or a reused
connection; no ``wait`` or ``receive`` after a failed connect). A phase that began
and never ended (the request failed, or is still in flight) ends when the request
ended (`in_flight`) and has ``incomplete=True``. Every phase lies within `in_flight`.

Example::

    record = httptrace_recorder.requests[0]
    wait = next(p for p in record.phases if p.name == "wait")
    print(f"time to first byte: {wait.duration * 1000:.1f} ms")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias, Union

if TYPE_CHECKING:
    from .recorder import RequestRecord
    from .waterfall import RequestData

__all__ = [
    "PHASE_NAMES",
    "Phase",
    "PhaseName",
    "in_flight",
    "is_leak",
    "phases",
    "released_at",
]

PhaseName: TypeAlias = Literal[
    "blocked", "dns", "connect", "tls", "send", "wait", "receive"
]

#: The phases of a request, in the order they happen.
PHASE_NAMES: tuple[PhaseName, ...] = (
    "blocked",
    "dns",
    "connect",
    "tls",
    "send",
    "wait",
    "receive",
)

#: A recorded request, or its plain-data form (`waterfall.request_data`).
Request: TypeAlias = Union["RequestRecord", "RequestData"]


@dataclass(frozen=True, kw_only=True)
class Phase:
    """One phase of a request: ``name`` is one of `PHASE_NAMES`; times in
    monotonic seconds.

    ``incomplete`` is True for a phase cut short (it ends when the request ended);
    ``args`` holds the arguments of the hook calls that opened and closed it.
    """

    name: PhaseName
    start: float
    end: float
    incomplete: bool = False
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def duration(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start


class _Call(NamedTuple):
    hook: str
    time: float
    args: Mapping[str, Any]


class _Parts(NamedTuple):
    """What the rules read of a request, whichever form it came in."""

    calls: list[_Call]
    started_at: float | None
    returned_at: float | None
    closed_at: float | None
    status: int | None
    error: object
    """The request's exception (its text, in the plain-data form), or None."""

    @property
    def failed(self) -> bool:
        return self.error is not None


def _parts(request: Request) -> _Parts:
    if isinstance(request, Mapping):  # RequestData
        data: Mapping[str, Any] = request
        return _Parts(
            [_Call(e["hook"], e["time"], e["args"]) for e in data["events"]],
            data["started_at"],
            data["returned_at"],
            data["closed_at"],
            data["status"],
            data["error"],
        )
    return _Parts(
        [_Call(e.hook, e.time, e.args) for e in request.events],
        request.started_at,
        request.returned_at,
        request.closed_at,
        request.status,
        request.error,
    )


def in_flight(request: Request) -> tuple[float, float]:
    """When the request was in flight: from its start (just before ``get_conn``; its
    first hook call when the start is unknown) to the latest of its last hook call,
    its return and its response's close. ``(0.0, 0.0)`` when it has no time at all."""
    return _in_flight(_parts(request))


def _in_flight(p: _Parts) -> tuple[float, float]:
    times = [c.time for c in p.calls]
    starts = [t for t in (p.started_at, *times[:1]) if t is not None]
    ends = [t for t in (p.returned_at, p.closed_at, *times) if t is not None]
    start = min(starts) if starts else (min(ends) if ends else 0.0)
    end = max(ends) if ends else start
    return start, max(start, end)


def is_leak(request: Request) -> bool:
    """Whether the request took a connection and its response was never closed.

    A call that raised before it had a response is not a leak: it left nothing to
    close (the client released the connection itself)."""
    return _is_leak(_parts(request))


def _is_leak(p: _Parts) -> bool:
    if p.closed_at is not None or not any(c.hook == "got_conn" for c in p.calls):
        return False
    return not (p.status is None and p.failed)


def released_at(request: Request) -> float | None:
    """When the request gave its connection back: its response's close, else its
    ``put_idle_conn``; None if it leaked (never); if it failed, when it ended."""
    p = _parts(request)
    if p.closed_at is not None:
        return p.closed_at
    for c in p.calls:
        if c.hook == "put_idle_conn":
            return c.time
    if _is_leak(p):
        return None
    return max((c.time for c in p.calls), default=_in_flight(p)[1])


def phases(request: Request) -> list[Phase]:
    """The phases of ``request`` (a `RequestRecord`, or its plain-data form), in
    time order; see the module docstring. ``record.phases`` is the same.

    Example::

        client.get(httptrace_server.url("/delay/0.2"))
        (record,) = httptrace_recorder.requests
        [p.name for p in phases(record)]
        # ['blocked', 'dns', 'connect', 'tls', 'send', 'wait', 'receive']
    """
    return _phases(_parts(request))


def _phases(p: _Parts) -> list[Phase]:
    calls = p.calls
    start, end = _in_flight(p)
    found: list[Phase] = []

    def pair(open_hook: str, close_hook: str, name: PhaseName) -> None:
        pending: _Call | None = None
        for c in calls:
            if c.hook == open_hook:
                pending = c
            elif c.hook == close_hook and pending is not None:
                args = {**pending.args, **c.args}
                found.append(
                    Phase(name=name, start=pending.time, end=c.time, args=args)
                )
                pending = None
        if pending is not None:
            found.append(
                Phase(
                    name=name,
                    start=pending.time,
                    end=end,
                    incomplete=True,
                    args=dict(pending.args),
                )
            )

    def first(*hooks: str) -> _Call | None:
        return next((c for c in calls if c.hook in hooks), None)

    get_conn = first("get_conn")
    if get_conn is not None:
        until = next(
            (
                c
                for c in calls
                if c.time >= get_conn.time
                and c.hook
                in ("dns_start", "connect_start", "tls_handshake_start", "got_conn")
            ),
            None,
        )
        found.append(
            Phase(
                name="blocked",
                start=get_conn.time,
                end=end if until is None else until.time,
                incomplete=until is None,
                args=dict(get_conn.args),
            )
        )

    pair("dns_start", "dns_done", "dns")
    pair("connect_start", "connect_done", "connect")
    pair("tls_handshake_start", "tls_handshake_done", "tls")

    got_conn = first("got_conn")
    wrote_headers = first("wrote_headers")
    wrote_request = first("wrote_request")
    first_byte = first("got_first_response_byte")

    if got_conn is not None:
        send_end: float | None = None
        send_args: dict[str, Any] = {}
        send_cut = False
        if wrote_request is not None:
            send_end = wrote_request.time
            send_args = dict(wrote_request.args)
        elif p.failed or first_byte is not None:
            send_end, send_cut = end, True
        if (
            first_byte is not None
            and send_end is not None
            and first_byte.time < send_end
            and wrote_headers is not None
        ):
            # The first response byte came before the body was written: a 100
            # Continue waited for, or a server answering early. "send" is the
            # headers; the body goes out during "wait" and "receive".
            send_args["body_written_after_first_byte"] = True
            send_end = wrote_headers.time
        if send_end is not None:
            found.append(
                Phase(
                    name="send",
                    start=got_conn.time,
                    end=send_end,
                    incomplete=send_cut,
                    args=send_args,
                )
            )

    if first_byte is not None:
        wait_start = None
        if wrote_request is not None and wrote_request.time <= first_byte.time:
            wait_start = wrote_request.time
        elif wrote_headers is not None and wrote_headers.time <= first_byte.time:
            wait_start = wrote_headers.time
        if wait_start is not None:
            found.append(Phase(name="wait", start=wait_start, end=first_byte.time))
        receive_end = p.closed_at
        if receive_end is None:
            receive_end = end if p.failed else p.returned_at
        if receive_end is None:
            receive_end = end
        receive_args: dict[str, Any] = {"status": p.status}
        if p.failed:
            receive_args["error"] = p.error
        found.append(
            Phase(
                name="receive",
                start=first_byte.time,
                end=max(first_byte.time, receive_end),
                args=receive_args,
            )
        )
    elif wrote_request is not None and p.failed:
        found.append(
            Phase(name="wait", start=wrote_request.time, end=end, incomplete=True)
        )

    clamped = [
        dataclasses.replace(
            ph, start=min(max(ph.start, start), end), end=min(max(ph.end, start), end)
        )
        for ph in found
    ]
    return sorted(clamped, key=lambda ph: (ph.start, PHASE_NAMES.index(ph.name)))


def durations(found: Sequence[Phase]) -> dict[str, float]:
    """Total seconds per phase name (several ``connect`` tries add up)."""
    totals: dict[str, float] = {}
    for ph in found:
        totals[ph.name] = totals.get(ph.name, 0.0) + ph.duration
    return totals
