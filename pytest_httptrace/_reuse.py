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

import dataclasses
import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .assertions import _conn_label, _got_conn, _is_leak, _ms
from .assertions._format import _short
from .recorder import Recorder, RequestRecord

__all__ = ["NEW_CONNECTION_CAUSES", "ReuseVerdict", "reuse_verdict"]

#: Recorders the pytest plugin started: where a request's siblings are found when the
#: caller does not pass them.
_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _remember(recorder: Recorder) -> None:
    _recorders.add(recorder)


#: Why a request got a new connection (`ReuseVerdict.cause`), with what each means.
NEW_CONNECTION_CAUSES: dict[str, str] = {
    "no_connection": "it never got a connection",
    "first": "no earlier request to its origin was recorded",
    "not_read": "the earlier response was not read or closed: its connection was "
    "still taken",
    "in_use": "the earlier request was still using its HTTP/1.1 connection",
    "different_client": "the earlier request's connection was open, in another "
    "client's pool",
    "server": "the server closed the earlier connection (Connection: close, GOAWAY, "
    "or while it sat idle)",
    "client": "the client closed the earlier connection (a body not read to the end, "
    "an aborted request)",
    "idle_expired": "the earlier connection expired after sitting idle",
    "pool_full": "the pool discarded the earlier connection: too many idle ones",
    "protocol_error": "the earlier connection was closed after a protocol error",
    "client_closed": "the earlier connection's client was closed",
    "closed": "the earlier connection was closed, its source could not tell why",
}


@dataclass(frozen=True, kw_only=True)
class ReuseVerdict:
    """What `reuse_verdict` found: whether ``request`` reused a connection, why (one
    sentence), and the earlier request that sentence is about (or None).

    `cause` is why a request got a *new* connection, as a key of
    `NEW_CONNECTION_CAUSES` (for a request that reused one it raises `ValueError`).
    """

    request: RequestRecord
    reused: bool
    reason: str
    earlier: RequestRecord | None = None
    _cause: str | None = None
    _new: tuple[RequestRecord, ...] = ()

    @property
    def cause(self) -> str:
        """Why the request got a new connection: a key of `NEW_CONNECTION_CAUSES`
        (``"server"``, ``"idle_expired"``, ``"not_read"``...). Asked of a request that
        reused a connection, it raises `ValueError` naming the requests it is valid
        for."""
        if self._cause is None:
            got = [r for r in self._new if r is not self.request]
            which = ", ".join(f"#{r.id}" for r in got) or "none recorded"
            raise ValueError(
                f"#{self.request.id} reused connection {_conn_label(self.request)}: "
                "ReuseVerdict.cause says why a request got a new connection, so it "
                "has none here (read .reason for why it reused). Requests that got a "
                f"new connection: {which}. Valid causes: "
                f"{', '.join(NEW_CONNECTION_CAUSES)}."
            )
        return self._cause


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
            _cause="no_connection",
        )
    requests, complete = _siblings(request, among)
    begin = _start(request)
    if got.args.get("reused"):
        verdict = _why_reused(request, requests, begin)
        new = tuple(
            r
            for r in requests
            if (g := _got_conn(r)) is not None and not g.args.get("reused")
        )
        return dataclasses.replace(verdict, _new=new)
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
            _cause="first",
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
    why = record.close_reason if record is not None else None
    got = _got_conn(request)
    took = got.time if got is not None else begin
    cause = "closed"

    # A connection closed for a known reason before this request took its own (the
    # pool drops an expired or server-closed one as the request asks for one).
    if closed is not None and why is not None and closed <= took:
        cause = why
        reason = _closed_because(why, earlier, conn, closed, back, start, t0)
    elif closed is not None and closed <= begin:
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
        cause = "different_client" if http2 else "in_use"
        if _is_leak(earlier) and not http2:
            cause = "not_read"
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
        cause = "different_client"
        reason = (
            f"{conn} of the earlier request #{earlier.id} was idle in the pool from "
            f"{_ms(released, t0)} and still open when {start}: #{request.id} came "
            "from another client (each client has its own pool)"
        )
    return ReuseVerdict(
        request=request, reused=False, reason=reason, earlier=earlier, _cause=cause
    )


def _closed_because(
    why: str,
    earlier: RequestRecord,
    conn: str,
    closed: float,
    back: float | None,
    start: str,
    t0: float,
) -> str:
    """The sentence for a connection its source said why it closed (a key of
    `CONN_CLOSE_REASONS`)."""
    record = earlier.connection
    assert record is not None
    at = _ms(closed, t0)
    head = f"{conn} of the earlier request #{earlier.id}"
    given = f" went back to the pool at {_ms(back, t0)} and" if back else ""
    # Closed with the response (not later, while idle): the server's answer did it.
    with_response = back is None and (
        earlier.closed_at is None or closed <= earlier.closed_at
    )
    if why == "server":
        if record.protocol == "HTTP/2":
            said = " (end of stream)" if record.close_error else " (GOAWAY)"
        elif record.close_error is not None:
            said = " (end of stream before a response)"
        elif with_response:
            said = " (Connection: close)"
        else:
            said = " while it sat idle"
        return f"{head}{given} was closed by the server{said} at {at}, before {start}"
    if why == "client":
        if earlier.outcome == "closed_early":
            detail = "the response was closed before its body was read to the end"
        elif earlier.outcome == "failed":
            failure = type(earlier.error).__name__ if earlier.error else "an error"
            detail = f"the request failed ({failure})"
        else:
            detail = "the request asked for `Connection: close`, or was aborted"
        return f"{head} was closed by the client at {at}, before {start}: {detail}"
    if why == "idle_expired":
        return (
            f"{head}{given} expired after sitting idle past the client's keep-alive "
            f"expiry (closed at {at}), before {start}"
        )
    if why == "pool_full":
        return (
            f"{head}{given} was discarded by the pool: too many idle connections "
            f"(closed at {at}; the client's max_keepalive_connections), before {start}"
        )
    if why == "protocol_error":
        error = record.close_error
        what = f": {_short(error, 80)}" if error is not None else ""
        return f"{head} was closed after a protocol error{what} at {at}, before {start}"
    return (
        f"{head}{given} was closed with its client at {at}, before {start}: the "
        "client was closed (one client per request?)"
    )
