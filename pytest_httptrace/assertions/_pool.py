"""Pool waits: how long a request waited for a connection of the pool, and which
requests held the pool's connections meanwhile (`pool_wait`, `pool_holders`,
`assert_pool_wait`).

A request's pool wait is its ``blocked`` phase (`pytest_httptrace.phases`): from
``get_conn`` to its first dial step or ``got_conn``. It tells a saturated pool from a
slow server: a request that waited for the pool has a long ``blocked`` phase, a slow
server a long ``wait``. Only the records are read: this works for every source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..recorder import Recorder, RequestRecord
from ._format import _made_at, _ms, _req
from ._subject import _fail, _merged_events, _requests
from ._timeline import _timeline


def pool_wait(request: RequestRecord) -> float:
    """Seconds ``request`` waited for a connection of the pool (its ``blocked``
    phase; 0.0 if it did not wait). A request that failed while waiting (a pool
    timeout) waited until it failed.

    Example::

        assert pool_wait(httptrace_recorder.requests[1]) < 0.01
    """
    return sum(p.duration for p in request.phases if p.name == "blocked")


def pool_holders(
    request: RequestRecord, among: Recorder | Iterable[RequestRecord] | None = None
) -> list[RequestRecord]:
    """The requests to the same origin that held a connection while ``request``
    waited for the pool, in start order.

    ``among`` is where to look (a `Recorder` or requests); by default the recorder
    that recorded ``request`` when the pytest plugin started it.

    Example::

        starved = httptrace_recorder.requests[1]  # failed with httpx.PoolTimeout
        assert pool_holders(starved) == [httptrace_recorder.requests[0]]
    """
    from .._reuse import _origin, _siblings

    blocked = [p for p in request.phases if p.name == "blocked"]
    if not blocked:
        return []
    start, end = blocked[0].start, blocked[-1].end
    origin = _origin(request.url)
    siblings, _ = _siblings(request, among)
    holders = []
    for other in siblings:
        if other is request or _origin(other.url) != origin:
            continue
        took = next((e.time for e in other.events if e.hook == "got_conn"), None)
        if took is None or took > end:
            continue
        released = other.released_at
        if (math.inf if released is None else released) > start:
            holders.append(other)
    return sorted(holders, key=lambda r: r.in_flight[0])


def assert_pool_wait(
    source: Recorder | Iterable[RequestRecord], at_most: float
) -> None:
    """Assert that no request waited longer than ``at_most`` seconds for a connection
    of the pool; the failure names the requests that held the pool's connections.

    Example::

        with httptrace_server.client(limits=httpx.Limits(max_connections=1)) as c:
            ...
        assert_pool_wait(httptrace_recorder, at_most=0.05)
    """
    __tracebackhide__ = True
    if (
        isinstance(at_most, bool)
        or not isinstance(at_most, (int, float))
        or not math.isfinite(at_most)
        or at_most < 0
    ):
        raise TypeError(
            "assert_pool_wait() takes at_most=seconds, a finite number >= 0, "
            f"not {at_most!r}."
        )
    requests = _requests(source, "assert_pool_wait")
    among = source if isinstance(source, Recorder) else requests
    waited = [(r, pool_wait(r)) for r in requests]
    over = [(r, w) for r, w in waited if w > at_most]
    if not over:
        return
    t0 = min(r.in_flight[0] for r in requests)
    lines = [
        f"{len(over)} request{'s' if len(over) > 1 else ''} waited longer than "
        f"{at_most * 1000:.3f} ms for a connection of the pool:"
    ]
    shown = []
    for r, w in over:
        end = "" if r.error is None else f", then failed with {type(r.error).__name__}"
        lines.append(f"  {_req(r)} waited {w * 1000:.3f} ms{end}")
        holders = pool_holders(r, among)
        for h in holders:
            released = h.released_at
            until = (
                "never gave it back"
                if released is None
                else f"gave it back at {_ms(released, t0)}"
            )
            where = f", made at {_made_at(h)}" if h.origin else ""
            lines.append(f"    held by {_req(h)} ({until}{where})")
        if not holders:
            lines.append("    (no recorded request to that origin held a connection)")
        shown += [r, *holders]
    lines.append(
        "hint: the pool was full: raise its limit, or close responses (and stream "
        "bodies) sooner so that their connections go back."
    )
    unique = list(dict.fromkeys(shown))
    _fail("\n".join([*lines, "", *_timeline(_merged_events(unique))]))
