"""`assert_phases`: phase budgets over `RequestRecord.phases` (`_phases.py`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeAlias

from ..recorder import RequestRecord
from ._format import _ms, _req
from ._subject import _fail, _one_request
from ._timeline import _timeline

#: A phase budget: seconds (an upper bound), or a ``(min, max)`` pair of seconds
#: (either may be None: no bound on that side).
Budget: TypeAlias = "float | tuple[float | None, float | None]"


def _check_budgets(
    budgets: Mapping[str, object],
) -> dict[str, tuple[float | None, float | None]]:
    __tracebackhide__ = True
    from .._phases import PHASE_NAMES

    valid = ", ".join(PHASE_NAMES)
    if not budgets:
        raise TypeError(
            "assert_phases() needs at least one budget, in seconds: "
            f"assert_phases(record, wait=0.5). Phases: {valid}."
        )
    checked: dict[str, tuple[float | None, float | None]] = {}
    for name, budget in budgets.items():
        if name not in PHASE_NAMES:
            import difflib

            close = difflib.get_close_matches(name, PHASE_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown phase {name!r}.{hint} Valid phases: {valid}.")
        pair = tuple(budget) if isinstance(budget, (tuple, list)) else (None, budget)
        if len(pair) != 2 or not all(v is None or _is_seconds(v) for v in pair):
            raise TypeError(
                f"the budget for {name!r} must be seconds (a number: the most it may "
                "take) or a (min, max) pair of seconds (None for no bound), "
                f"not {budget!r}."
            )
        low, high = pair
        if budget is None or (low is None and high is None):
            raise TypeError(f"the budget for {name!r} sets no bound: {budget!r}.")
        for v in pair:
            if v is not None and (v < 0 or not math.isfinite(v)):
                raise ValueError(
                    f"the budget for {name!r} must be finite seconds >= 0, "
                    f"not {budget!r}."
                )
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"the budget for {name!r} has min > max: {budget!r} "
                "(a (min, max) pair)."
            )
        checked[name] = (low, high)
    return checked


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _budget_text(low: float | None, high: float | None) -> str:
    from ..waterfall import format_ms

    if low is None:
        return f"at most {format_ms(high or 0.0)}"
    if high is None:
        return f"at least {format_ms(low)}"
    return f"between {format_ms(low)} and {format_ms(high)}"


def assert_phases(record: RequestRecord, **budgets: Budget) -> None:
    """Assert how long the phases of one request took (`RequestRecord.phases`).

    Each keyword is a phase (``blocked``, ``dns``, ``connect``, ``tls``, ``send``,
    ``wait``, ``receive``) and its budget in seconds: a number is the most it may
    take, a ``(min, max)`` pair bounds it on both sides (None: no bound on that
    side). Several ``connect`` tries add up. A phase the request did not go through
    took 0 s (so ``dns=0.05`` passes on a reused connection, ``dns=(0.001, None)``
    fails). The failure lists every phase and shows the request's timeline.

    Example::

        client.get(httptrace_server.url("/delay/0.2"))
        (request,) = httptrace_recorder.requests
        assert_phases(request, wait=(0.2, None), connect=1.0)
    """
    __tracebackhide__ = True
    checked = _check_budgets(budgets)
    request = _one_request(record, "assert_phases")
    from .._phases import durations
    from ..waterfall import format_ms

    found = request.phases
    took = durations(found)
    broken = []
    for name, (low, high) in checked.items():
        seconds = took.get(name)
        value = 0.0 if seconds is None else seconds
        if (low is not None and value < low) or (high is not None and value > high):
            shown = "did not happen" if seconds is None else format_ms(value)
            broken.append(f"  {name:<8} {shown}, expected {_budget_text(low, high)}")
    if not broken:
        return
    s = "" if len(broken) == 1 else "s"
    lines = [
        f"request {_req(request)} is outside its budget in {len(broken)} phase{s}:"
    ]
    lines += broken
    t0 = min((e.time for e in request.events), default=request.in_flight[0])
    lines.append("phases (ms since the first hook call):")
    if not found:
        lines.append("  (none: the request recorded no hook call)")
    for phase in found:
        cut = "  (cut short)" if phase.incomplete else ""
        lines.append(
            f"  {phase.name:<8} {_ms(phase.start, t0)} to {_ms(phase.end, t0)}"
            f"  ({format_ms(phase.duration)}){cut}"
        )
    if request.events:
        lines += ["", *_timeline(list(request.events))]
    _fail("\n".join(lines))
