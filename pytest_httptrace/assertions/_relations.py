"""Relations between requests: order (`assert_hook_order`), concurrency
(`assert_concurrent`), connections (`assert_max_connections`,
`assert_shared_connection`, `assert_reused`, `assert_new_connection`,
`assert_connections_opened`) and `assert_after_return`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._phases import in_flight, released_at
from ..recorder import Event, Recorder, RequestRecord
from ..trace import HOOK_NAMES, _did_you_mean
from ._format import _at, _conn_label, _event_text, _got_conn, _ms, _req, _short
from ._matcher import HookMatcher
from ._sequence import _MISSING_HINTS
from ._subject import _fail, _merged_events, _nothing_recorded, _one_request, _requests
from ._timeline import _timeline


def _hook_events(request: RequestRecord, which: str | HookMatcher) -> list[Event]:
    if isinstance(which, HookMatcher):
        return [e for e in request.events if which.matches(e)]
    return [e for e in request.events if e.hook == which]


def _check_hook(which: object, fn: str) -> str | HookMatcher:
    if isinstance(which, HookMatcher):
        return which
    if not isinstance(which, str):
        raise TypeError(
            f"{fn}(): expected a hook name or hook(...), got {type(which).__name__}."
        )
    if which not in HOOK_NAMES:
        raise ValueError(f"{fn}(): unknown hook name {which!r}.{_did_you_mean(which)}")
    return which


def _missing(request: RequestRecord, which: str | HookMatcher) -> str:
    name = which if isinstance(which, str) else which.name
    what = which if isinstance(which, str) else repr(which)
    hooks = ", ".join(_dedup_hooks(request.hooks)) or "none"
    text = f"request {_req(request)} has no {what} call; its hooks: {hooks}."
    if name in _MISSING_HINTS:
        text += f"\nhint: {_MISSING_HINTS[name]}"
    return text


def _dedup_hooks(hooks: Sequence[str]) -> list[str]:
    """Hook names with runs of one name folded (``wrote_header_field x7``)."""
    out: list[str] = []
    i = 0
    while i < len(hooks):
        j = i
        while j < len(hooks) and hooks[j] == hooks[i]:
            j += 1
        out.append(hooks[i] if j - i == 1 else f"{hooks[i]} x{j - i}")
        i = j
    return out


def _key(event: Event) -> tuple[float, int]:
    return (event.time, event.index)


def assert_hook_order(
    first: RequestRecord,
    first_hook: str | HookMatcher,
    second: RequestRecord,
    second_hook: str | HookMatcher,
) -> None:
    """Assert that ``second``'s ``second_hook`` came after ``first``'s ``first_hook``.

    Precisely: the first call of ``second_hook`` in ``second`` came after the last
    call of ``first_hook`` in ``first`` (by time, then by recording order). Either
    hook may be a `hook` matcher; both requests may be the same.

    Example: request B waited for the connection request A put back::

        a, b = httptrace_recorder.requests
        assert_hook_order(a, "put_idle_conn", b, "get_conn")
        assert_reused(b)
    """
    __tracebackhide__ = True
    first = _one_request(first, "assert_hook_order")
    second = _one_request(second, "assert_hook_order")
    first_hook = _check_hook(first_hook, "assert_hook_order")
    second_hook = _check_hook(second_hook, "assert_hook_order")
    before = _hook_events(first, first_hook)
    if not before:
        _fail(_missing(first, first_hook))
    after = _hook_events(second, second_hook)
    if not after:
        _fail(_missing(second, second_hook))
    a, b = max(before, key=_key), min(after, key=_key)
    if _key(a) < _key(b):
        return
    involved = [first] if first is second else [first, second]
    t0 = min(e.time for r in involved for e in r.events)
    a_name, b_name = _hook_label(first_hook), _hook_label(second_hook)
    gap = (a.time - b.time) * 1000
    rows = [
        (f"#{first.id}", a_name, _ms(a.time, t0)),
        (f"#{second.id}", b_name, _ms(b.time, t0)),
    ]
    width = max(len(r[1]) for r in rows)
    lines = [
        f"request #{second.id}'s {b_name} came before request #{first.id}'s "
        f"{a_name}, expected after it:",
        *(f"  {rid} {name:<{width}}  at {when}" for rid, name, when in rows),
        f"  ({gap:.3f} ms earlier)" if gap else "  (at the same time)",
    ]
    if len(before) > 1:
        lines.append(
            f"  ({first_hook!r} was called {len(before)} times; the last one counts)"
        )
    lines.append("")
    lines += _timeline(_merged_events(involved))
    _fail("\n".join(lines))


def _hook_label(which: str | HookMatcher) -> str:
    return which if isinstance(which, str) else repr(which)


def _interval(request: RequestRecord) -> tuple[float, float]:
    """When a request was in flight (`in_flight`: the waterfall's bounds)."""
    return in_flight(request)


def assert_concurrent(a: RequestRecord, b: RequestRecord) -> None:
    """Assert that requests ``a`` and ``b`` were in flight at the same time.

    A request is in flight from its start (just before ``get_conn``) to the latest of
    its last hook call, the return of the call that made it and the close of its
    response; the two intervals must overlap (touching is not overlapping).

    Example::

        with ThreadPoolExecutor() as pool:
            list(pool.map(client.get, [url_a, url_b]))
        a, b = httptrace_recorder.requests
        assert_concurrent(a, b)
    """
    __tracebackhide__ = True
    a = _one_request(a, "assert_concurrent")
    b = _one_request(b, "assert_concurrent")
    for r in (a, b):
        if not r.events:
            _fail(f"request {_req(r)} recorded no hook calls.")
    (a0, a1), (b0, b1) = _interval(a), _interval(b)
    if a0 < b1 and b0 < a1:
        return
    early, late = (a, b) if a0 <= b0 else (b, a)
    (e0, e1), (l0, l1) = _interval(early), _interval(late)
    t0 = e0
    lines = [
        f"requests #{a.id} and #{b.id} were not in flight at the same time:",
        f"  {_req(early)}  from {_ms(e0, t0)} to {_ms(e1, t0)}",
        f"  {_req(late)}  from {_ms(l0, t0)} to {_ms(l1, t0)}",
        f"  (#{late.id} started {(l0 - e1) * 1000:.3f} ms after #{early.id} ended)",
        "hint: requests made one after the other never overlap; start them from "
        "threads or asyncio tasks (asyncio.gather) to make them concurrent.",
        "",
        *_timeline(_merged_events([early, late])),
    ]
    _fail("\n".join(lines))


@dataclass
class _Conn:
    """A connection as the helpers see it: a ConnectionRecord, or when the source
    did not give one, the ``conn`` object of ``got_conn``."""

    label: str
    requests: list[RequestRecord] = field(default_factory=list)
    dialer: RequestRecord | None = None
    opened_at: float | None = None
    closed_at: float | None = None


def _connections(requests: Iterable[RequestRecord]) -> dict[object, _Conn]:
    conns: dict[object, _Conn] = {}
    for r in requests:
        got = _got_conn(r)
        if got is None:
            continue
        key: object
        if r.connection is not None:
            key, label = ("record", r.connection.id), f"c{r.connection.id}"
        else:
            obj = got.args.get("conn")
            key = ("object", id(obj)) if obj is not None else ("request", r.id)
            label = f"the connection of #{r.id}"
        conn = conns.get(key)
        if conn is None:
            conn = conns[key] = _Conn(label=label)
            if r.connection is not None:
                conn.opened_at = r.connection.opened_at
                conn.closed_at = r.connection.closed_at
        conn.requests.append(r)
        if not got.args.get("reused") and conn.dialer is None:
            conn.dialer = r
        if conn.opened_at is None or got.time < conn.opened_at:
            conn.opened_at = got.time
    return conns


def _release(request: RequestRecord) -> float:
    """When a request gave its connection back (`released_at`); if it
    leaked, never (``math.inf``)."""
    released = released_at(request)
    return math.inf if released is None else released


def assert_max_connections(
    recorder: Recorder | Iterable[RequestRecord],
    n: int,
    *,
    state: Literal["open", "in_use"] = "open",
) -> None:
    """Assert that at most ``n`` connections were open (or in use) at any moment.

    ``state="open"`` (default): a connection is open from the first ``got_conn`` of a
    request that used it (or from when it was dialed, if earlier) until it was
    closed; a connection still open when the recording ends counts to the end.

    ``state="in_use"``: a connection is in use while at least one request holds it:
    from that request's ``got_conn`` until its response was closed (or
    ``put_idle_conn``); a response never closed holds it to the end. Several HTTP/2
    requests on one connection count once.

    Example::

        limits = httpx.Limits(max_connections=4)
        with httptrace_server.client(limits=limits) as client:
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(client.get, urls))
        assert_max_connections(httptrace_recorder, 4, state="in_use")
    """
    __tracebackhide__ = True
    if state not in ("open", "in_use"):
        raise ValueError(f"state must be 'open' or 'in_use', not {state!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, not {n!r}")
    requests = _requests(recorder, "assert_max_connections")
    conns = _connections(requests)
    spans: list[tuple[float, float, object, RequestRecord | None]] = []
    for key, conn in conns.items():
        if state == "open":
            assert conn.opened_at is not None
            end = conn.closed_at if conn.closed_at is not None else math.inf
            spans.append((conn.opened_at, end, key, None))
        else:
            for r in conn.requests:
                got = _got_conn(r)
                assert got is not None
                spans.append((got.time, _release(r), key, r))
    # Sweep; at equal times releases come first (touching spans do not overlap).
    points = sorted(
        [(s, 1, i) for i, (s, _, _, _) in enumerate(spans)]
        + [(e, 0, i) for i, (_, e, _, _) in enumerate(spans)]
    )
    active: dict[int, None] = {}
    peak: tuple[int, float, list[int]] = (0, 0.0, [])
    for t, is_start, i in points:
        if is_start:
            active[i] = None
            count = len({spans[j][2] for j in active})
            if count > peak[0]:
                peak = (count, t, list(active))
        else:
            active.pop(i, None)
    if peak[0] <= n:
        return
    count, when, members = peak
    t0 = min(e.time for r in requests for e in r.events)
    word = "open" if state == "open" else "in use"
    plural = "connection" if n == 1 else "connections"
    lines = [
        f"expected at most {n} {plural} {word} at once, {count} were {word} at "
        f"{_ms(when, t0)}:"
    ]
    keys = list(conns)
    for i in sorted(members, key=lambda j: (keys.index(spans[j][2]), spans[j][0])):
        start, end, key, holder = spans[i]
        conn = conns[key]
        until = (
            f" to {_ms(end, t0)}"
            if end != math.inf
            else ", never " + ("closed" if state == "open" else "released")
        )
        if state == "open":
            by = conn.dialer or conn.requests[0]
            verb = "opened by" if conn.dialer is not None else "first used by"
            lines.append(
                f"  {conn.label}  {verb} {_req(by)}, from {_ms(start, t0)}{until}"
            )
        else:
            assert holder is not None
            by_text = f"in use by {_req(holder)}"
            lines.append(f"  {conn.label}  {by_text}, from {_ms(start, t0)}{until}")
    if state == "open":
        lines.append(
            "(a connection counts as open from when it was dialed until it was "
            "closed; state='in_use' counts connections held by a request)"
        )
    else:
        lines.append(
            "(a connection counts as in use from a request's got_conn until its "
            "response is closed)"
        )
    lines.append(
        "hint: is the pool limited (httpx.Limits(max_connections=...))? is one client "
        "shared by the requests? are responses closed before the next request?"
    )
    _fail("\n".join(lines))


def assert_shared_connection(a: RequestRecord, b: RequestRecord) -> None:
    """Assert that requests ``a`` and ``b`` were served by the same connection.

    True for a connection reused one request after the other, and for HTTP/2
    requests multiplexed on one connection (combine with `assert_concurrent` to
    require that they were in flight at once).

    Example::

        async with httptrace_server.async_client(http2=True) as client:
            await asyncio.gather(client.get(url_a), client.get(url_b))
        a, b = httptrace_recorder.requests
        assert_concurrent(a, b)
        assert_shared_connection(a, b)
    """
    __tracebackhide__ = True
    a = _one_request(a, "assert_shared_connection")
    b = _one_request(b, "assert_shared_connection")
    for r in (a, b):
        if _got_conn(r) is None:
            _fail(_no_connection(r))
    conns = _connections([a, b])
    if len(conns) == 1:
        return
    ca, cb = (next(c for c in conns.values() if r in c.requests) for r in (a, b))
    lines = [
        f"requests #{a.id} and #{b.id} did not share a connection: "
        f"#{a.id} used {ca.label}, #{b.id} used {cb.label}:",
    ]
    for r in (a, b):
        lines.append(f"  {_req(r)}  {_conn_text(r)}")
    lines += [
        "hint: an HTTP/1.1 connection serves one request at a time, so concurrent "
        "requests get connections of their own; HTTP/2 multiplexes them on one "
        "connection (httpx.Client(http2=True), and a server that speaks h2). "
        "Requests from different clients never share a connection.",
        "",
        *_timeline(_merged_events([a, b])),
    ]
    _fail("\n".join(lines))


def _conn_text(request: RequestRecord) -> str:
    got = _got_conn(request)
    if got is None:
        return "no connection"
    parts = [_conn_label(request) if request.connection is not None else "connection"]
    conn = request.connection
    if conn is not None and conn.protocol:
        parts.append(conn.protocol)
    parts.append("reused" if got.args.get("reused") else "new")
    return " ".join(parts)


def _no_connection(request: RequestRecord) -> str:
    text = f"request {_req(request)} never got a connection (no got_conn call)"
    if request.error is not None:
        text += f"; it failed with {_short(request.error, 80)}"
    hooks = ", ".join(_dedup_hooks(request.hooks)) or "none"
    return f"{text}.\nits hooks: {hooks}"


def assert_reused(
    request: RequestRecord, among: Recorder | Iterable[RequestRecord] | None = None
) -> None:
    """Assert that ``request`` got a reused connection (``got_conn`` with
    ``reused=True``).

    On failure the message says why there was no reuse (`reuse_verdict`: the earlier
    request to the same origin, and what became of its connection) and shows that
    request's timeline with this one. ``among``: the requests to look for it in (by
    default, the test's recorder).

    Example::

        with httptrace_server.client() as client:
            client.get(httptrace_server.url())
            client.get(httptrace_server.url())
        first, second = httptrace_recorder.requests
        assert_new_connection(first)
        assert_reused(second)
    """
    __tracebackhide__ = True
    request = _one_request(request, "assert_reused")
    got = _got_conn(request)
    if got is None:
        _fail(_no_connection(request))
    if got.args.get("reused"):
        return
    from .._reuse import reuse_verdict

    verdict = reuse_verdict(request, among)
    shown = [r for r in (verdict.earlier, request) if r is not None]
    lines = [
        f"request {_req(request)} got a new connection ({_conn_text(request)}), "
        "expected a reused one:",
        f"  {_event_text(got)}",
        f"why: {verdict.reason}.",
        "hint: a connection is reused only by the same client (share one client, do "
        "not create one per request), once the previous response was read or closed "
        "(HTTP/1.1), and while the server keeps it alive (no `Connection: close`, "
        "keep-alive timeout not expired).",
        "",
        *_timeline(_merged_events(shown)),
    ]
    _fail("\n".join(lines))


def assert_new_connection(
    request: RequestRecord, among: Recorder | Iterable[RequestRecord] | None = None
) -> None:
    """Assert that ``request`` got a new connection (``got_conn`` with
    ``reused=False``): it was dialed for this request.

    On failure the message names the earlier request whose connection was reused
    (`reuse_verdict`) and shows its timeline with this one's.

    Example::

        first = httptrace_recorder.requests[0]
        assert_new_connection(first)
        assert_hook_sequence(first, [..., "tls_handshake_done", "got_conn", ...])
    """
    __tracebackhide__ = True
    request = _one_request(request, "assert_new_connection")
    got = _got_conn(request)
    if got is None:
        _fail(_no_connection(request))
    if not got.args.get("reused"):
        return
    from .._reuse import reuse_verdict

    verdict = reuse_verdict(request, among)
    shown = [r for r in (verdict.earlier, request) if r is not None]
    idle = ""
    if got.args.get("was_idle"):
        idle = f", idle for {float(got.args.get('idle_time') or 0.0) * 1000:.3f} ms"
    lines = [
        f"request {_req(request)} reused a connection ({_conn_text(request)}{idle}), "
        "expected a new one:",
        f"  {_event_text(got)}",
        f"why: {verdict.reason}.",
        "hint: requests of one client reuse its pooled connections; a new connection "
        "needs a new client, a closed pool (client.close()), or a server that closed "
        "the previous one (`Connection: close`).",
        "",
        *_timeline(_merged_events(shown)),
    ]
    _fail("\n".join(lines))


def assert_connections_opened(
    recorder: Recorder | Iterable[RequestRecord], n: int
) -> None:
    """Assert that exactly ``n`` connections were dialed: ``n`` ``got_conn`` calls
    with ``reused=False`` among the requests (of the recorder's current phase).

    Example::

        with httptrace_server.client() as client:
            for _ in range(10):
                client.get(httptrace_server.url())
        assert_connections_opened(httptrace_recorder, 1)

    An empty recording is a valid answer: ``assert_connections_opened(recorder, 0)``
    passes when no request reached the network (a cache hit, say).
    """
    __tracebackhide__ = True
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, not {n!r}")
    requests = _requests(recorder, "assert_connections_opened", allow_empty=True)
    if not requests:
        if n == 0:
            return
        plural = "connection" if n == 1 else "connections"
        _fail(
            f"expected exactly {n} {plural} to be opened, 0 were: no request was "
            "recorded.\n"
            + _nothing_recorded(recorder if isinstance(recorder, Recorder) else None)
        )
    new = [
        r
        for r in requests
        if (g := _got_conn(r)) is not None and not g.args.get("reused")
    ]
    if len(new) == n:
        return
    reused = [
        r for r in requests if (g := _got_conn(r)) is not None and g.args.get("reused")
    ]
    none = [r for r in requests if _got_conn(r) is None]
    plural = "connection" if n == 1 else "connections"
    lines = [
        f"expected exactly {n} {plural} to be opened, {len(new)} "
        f"{'was' if len(new) == 1 else 'were'}:"
    ]
    lines += [f"  {_conn_label(r)}  opened by {_req(r)}{_at(r)}" for r in new]
    if reused:
        lines.append(
            "reused: "
            + ", ".join(f"#{r.id} ({_conn_label(r)})" for r in reused[:20])
            + (f", ... {len(reused) - 20} more" if len(reused) > 20 else "")
        )
    if none:
        lines.append("no connection: " + ", ".join(f"#{r.id}" for r in none[:20]))
    if len(new) > n:
        lines.append(
            "hint: more connections than expected: is one client shared (not one per "
            "request)? was each response read or closed before the next request? did "
            "the server close connections (`Connection: close`)?"
        )
    else:
        lines.append(
            "hint: fewer connections than expected: requests of one client reuse its "
            "pooled connections, and HTTP/2 multiplexes concurrent requests on one."
        )
    _fail("\n".join(lines))


def assert_after_return(request: RequestRecord, hook_name: str | HookMatcher) -> None:
    """Assert that ``hook_name`` ran for ``request`` after the call that made the
    request had returned (or raised): at least one such call has
    ``Event.after_return`` set.

    Example: a streamed response gives its connection back when it is closed, after
    ``client.stream(...)`` returned::

        with client.stream("GET", url) as response:
            response.read()
        assert_after_return(httptrace_recorder.requests[0], "put_idle_conn")
    """
    __tracebackhide__ = True
    request = _one_request(request, "assert_after_return")
    which = _check_hook(hook_name, "assert_after_return")
    calls = _hook_events(request, which)
    if not calls:
        _fail(_missing(request, which))
    if any(e.after_return for e in calls):
        return
    t0 = min(e.time for e in request.events)
    label = _hook_label(which)
    when = ", ".join(_ms(e.time, t0) for e in calls)
    returned = (
        f"the call returned at {_ms(request.returned_at, t0)}"
        if request.returned_at is not None
        else "the call had not returned when the recording ended"
    )
    lines = [
        f"request {_req(request)}: {label} ran before the call returned, expected "
        "after it:",
        f"  {label} at {when}; {returned}",
        "hint: for a response that is read inside the call (client.get(...)), the "
        "connection goes back to the pool before the call returns; with "
        "client.stream(...) it goes back when the response is closed.",
        "",
        *_timeline(request.events),
    ]
    _fail("\n".join(lines))
