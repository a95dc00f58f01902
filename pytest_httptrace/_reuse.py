"""Why a request did or did not reuse a connection, from what the records hold.

`reuse_verdict` is the one place that reasons about reuse; `assert_reused` and
`assert_new_connection` print its sentence and show the earlier request it names. It
reads only the client-agnostic records: the earlier requests to the same origin, when
each got and gave back its connection (``got_conn``, ``put_idle_conn``, the response's
``closed_at``), whether it leaked, and when its connection closed. No client library
is consulted.

Which requests count as "earlier": those given as ``among`` (a `Recorder` or
requests), else those of the recorder that recorded the request if the pytest plugin
started it, else the requests of the request's own connection.

Example::

    verdict = reuse_verdict(second, httptrace_recorder)
    assert verdict.reused, verdict.reason
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .assertions import _conn_label, _got_conn, _is_leak, _ms
from .recorder import Recorder, RequestRecord

__all__ = ["ReuseVerdict", "reuse_verdict"]

#: Recorders the pytest plugin started: where a request's siblings are found when the
#: caller does not pass them.
_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _remember(recorder: Recorder) -> None:
    _recorders.add(recorder)


@dataclass(frozen=True, kw_only=True)
class ReuseVerdict:
    """What `reuse_verdict` found: whether ``request`` reused a connection, why (one
    sentence), and the earlier request that sentence is about (or None)."""

    request: RequestRecord
    reused: bool
    reason: str
    earlier: RequestRecord | None = None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _siblings(
    request: RequestRecord, among: Recorder | Iterable[RequestRecord] | None
) -> tuple[list[RequestRecord], bool]:
    """The requests to compare with, and whether they are all the recorder's."""
    if isinstance(among, Recorder):
        return among.all_requests, True
    if among is not None:
        return list(among), True
    for recorder in list(_recorders):
        requests = recorder.all_requests
        if any(r is request for r in requests):
            return requests, True
    if request.connection is not None:
        return list(request.connection.requests), False
    return [request], False


def _start(request: RequestRecord) -> float:
    return min(e.time for e in request.events)


def _got_conn_time(request: RequestRecord) -> float:
    got = _got_conn(request)
    return math.inf if got is None else got.time


def _put_back(request: RequestRecord) -> float | None:
    return next((e.time for e in request.events if e.hook == "put_idle_conn"), None)


def _released(request: RequestRecord) -> float | None:
    """When the request let go of its connection (None: it never did)."""
    back = _put_back(request)
    if back is not None:
        return back
    return request.closed_at


def _same_connection(a: RequestRecord, b: RequestRecord) -> bool:
    if a.connection is not None and b.connection is not None:
        return a.connection is b.connection
    ga, gb = _got_conn(a), _got_conn(b)
    obj = ga.args.get("conn") if ga is not None else None
    return obj is not None and gb is not None and gb.args.get("conn") is obj


def reuse_verdict(
    request: RequestRecord, among: Recorder | Iterable[RequestRecord] | None = None
) -> ReuseVerdict:
    """Whether ``request`` reused a connection, and why (or why not), in a sentence.

    ``among`` holds the requests to compare with (a `Recorder`, or requests); by
    default the recorder the pytest plugin started for the test, else the requests
    of ``request``'s connection. The reason names the earlier request it is about
    (`ReuseVerdict.earlier`): the one whose connection was reused, or, for a new
    connection, the latest earlier request to the same origin, and says what became
    of its connection: still taken (response not read or closed, or in use by a
    concurrent request), closed before this request started (with its client, by the
    server, or because the response was closed unread), or idle in another client's
    pool.

    Example::

        verdict = reuse_verdict(httptrace_recorder.requests[1])
        print(verdict.reason)
    """
    got = _got_conn(request)
    if got is None:
        return ReuseVerdict(
            request=request,
            reused=False,
            reason=f"#{request.id} never got a connection (no got_conn call)",
        )
    requests, complete = _siblings(request, among)
    begin = _start(request)
    if got.args.get("reused"):
        return _why_reused(request, requests, begin)
    return _why_new(request, requests, begin, complete)


def _why_reused(
    request: RequestRecord, requests: list[RequestRecord], begin: float
) -> ReuseVerdict:
    got = _got_conn(request)
    assert got is not None
    label = _conn_label(request)
    conn = f"connection {label}" if label != "-" else "a pooled connection"
    before = [
        r
        for r in requests
        if r is not request
        and (g := _got_conn(r)) is not None
        and g.time < got.time
        and _same_connection(r, request)
    ]
    if not before:
        idle = _idle(got.args)
        return ReuseVerdict(
            request=request,
            reused=True,
            reason=f"#{request.id} took {conn} from its client's pool{idle}; the "
            "request that used it first was not recorded",
        )
    earlier = max(before, key=_got_conn_time)
    t0 = min(begin, _start(earlier))
    released = _released(earlier)
    http2 = request.connection is not None and request.connection.protocol == "HTTP/2"
    if released is None or released > got.time:
        sharing = (
            "HTTP/2 multiplexes the requests of one client on one connection"
            if http2
            else "the requests of one client share its pool"
        )
        reason = (
            f"#{request.id} shares {conn} with #{earlier.id}, which was still using "
            f"it: {sharing}"
        )
    else:
        reason = (
            f"#{request.id} reused {conn}, which #{earlier.id} gave back at "
            f"{_ms(released, t0)}{_idle(got.args)}: the requests of one client "
            "share its pool"
        )
    return ReuseVerdict(request=request, reused=True, reason=reason, earlier=earlier)


def _idle(args: Mapping[str, Any]) -> str:
    if not args.get("was_idle"):
        return ""
    return f" (idle for {float(args.get('idle_time') or 0.0) * 1000:.3f} ms)"


def _why_new(
    request: RequestRecord,
    requests: list[RequestRecord],
    begin: float,
    complete: bool,
) -> ReuseVerdict:
    origin = _origin(request.url)
    before = [
        r
        for r in requests
        if r is not request
        and r.events
        and _start(r) < begin
        and _origin(r.url) == origin
        and _got_conn(r) is not None
    ]
    if not before:
        where = "" if complete else " (pass among=recorder to compare with all)"
        return ReuseVerdict(
            request=request,
            reused=False,
            reason=f"no earlier request to {origin} was recorded{where}: the first "
            "request to an origin dials",
        )
    earlier = max(before, key=_start)
    t0 = min(begin, _start(earlier))
    start = f"#{request.id} started at {_ms(begin, t0)}"
    label = _conn_label(earlier)
    conn = f"connection {label}" if label != "-" else "its connection"
    record = earlier.connection
    http2 = record is not None and record.protocol == "HTTP/2"
    closed = record.closed_at if record is not None else None
    back = _put_back(earlier)
    released = _released(earlier)

    if closed is not None and closed <= begin:
        if earlier.status is None and earlier.error is not None:
            failure = type(earlier.error).__name__
            reason = (
                f"the earlier request #{earlier.id} failed ({failure}) and {conn} "
                f"was closed at {_ms(closed, t0)}, before {start}"
            )
        elif back is None and not http2:
            reason = (
                f"{conn} of the earlier request #{earlier.id} never went back to the "
                f"pool: the response was closed at {_ms(earlier.closed_at, t0)} and "
                f"the connection with it at {_ms(closed, t0)}, before {start} (the "
                "server answered `Connection: close`, or the response was closed "
                "before its body was read)"
            )
        else:
            given = f" went back to the pool at {_ms(back, t0)} but" if back else ""
            reason = (
                f"{conn} of the earlier request #{earlier.id}{given} was closed at "
                f"{_ms(closed, t0)}, before {start}: its client was closed with it "
                "(one client per request?), or the server closed it"
            )
    elif released is None or released > begin:
        if _is_leak(earlier) and not http2:
            reason = (
                f"the response of the earlier request #{earlier.id} was not read or "
                f"closed, so {conn} was still taken when {start}: close each "
                "response (`with client.stream(...)`) before the next request"
            )
        elif http2:
            reason = (
                f"{conn} (HTTP/2) of the earlier request #{earlier.id} was open when "
                f"{start}: a request of the same client would have shared it; "
                f"#{request.id} came from another client, or both dialed at once"
            )
        else:
            until = _ms(released, t0) if released is not None else "?"
            reason = (
                f"{conn} was in use by the earlier request #{earlier.id} (until "
                f"{until}) when {start}: an HTTP/1.1 connection serves one request "
                "at a time"
            )
    else:
        reason = (
            f"{conn} of the earlier request #{earlier.id} was idle in the pool from "
            f"{_ms(released, t0)} and still open when {start}: #{request.id} came "
            "from another client (each client has its own pool)"
        )
    return ReuseVerdict(request=request, reused=False, reason=reason, earlier=earlier)
