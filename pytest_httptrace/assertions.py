"""Assertions over recorded hook calls, with failure messages a person can read.

`assert_hook_sequence` matches the hooks of a request against a pattern of hook names,
`hook(...)` matchers and ``...`` (any run of hooks). The other helpers answer the
questions a test asks most: which request came first, were two requests in flight
at once, how many connections were open, was a connection reused, did a hook run
after the call returned, was a response left open.

Every helper raises a plain `AssertionError` whose text is built here on purpose (it
does not rely on pytest's assertion rewriting) and hides its own frames from the
traceback (``__tracebackhide__``). `render_timeline` is the renderer the messages
use; the plugin's report section uses it too.

Example::

    def test_second_request_reuses_the_connection(httptrace_recorder, httptrace_server):
        with httptrace_server.client() as client:
            client.get(httptrace_server.url())
            client.get(httptrace_server.url())
        first, second = httptrace_recorder.requests
        assert_hook_sequence(second, ["get_conn", hook("got_conn", reused=True), ...])
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Literal, NamedTuple, NoReturn, TypeAlias

from ._phases import in_flight, is_leak, released_at
from .recorder import Event, Recorder, RequestRecord
from .trace import HOOK_ARGS, HOOK_NAMES, TLSConnectionState, _did_you_mean

__all__ = [
    "HookMatcher",
    "PatternItem",
    "assert_after_return",
    "assert_concurrent",
    "assert_connections_opened",
    "assert_hook_order",
    "assert_hook_sequence",
    "assert_max_connections",
    "assert_new_connection",
    "assert_no_leaks",
    "assert_phases",
    "assert_reused",
    "assert_shared_connection",
    "find_leaks",
    "hook",
    "render_timeline",
]

#: Hooks compared by `assert_hook_sequence` only when the pattern names them.
#: ``wrote_header_field`` runs once per request header: a dozen calls that would
#: otherwise make every pattern spell out the headers.
OPT_IN_HOOKS: frozenset[str] = frozenset({"wrote_header_field"})

#: Past this many lines, a timeline in a failure message shows the part around the
#: point of failure (and its first and last lines).
_MAX_TIMELINE = 40
#: Past this many ``and:`` lines, a transcript says how many more there were.
_MAX_AND_LINES = 12


# -- hook(): pattern items with argument matchers --------------------------------------


class HookMatcher:
    """One call of hook ``name`` whose arguments satisfy ``matchers``; built by `hook`.

    Each matcher is compared with the recorded argument: a class means "is an
    instance of", another callable is called with the value and must return
    something truthy (if it raises, that is a mismatch), anything else is compared
    with ``==``.
    """

    __slots__ = ("matchers", "name")

    def __init__(self, name: str, matchers: Mapping[str, object]) -> None:
        self.name = name
        self.matchers = dict(matchers)

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is a call of this hook with matching arguments."""
        if event.hook != self.name:
            return False
        return all(
            _arg_matches(expected, event.args, arg)
            for arg, expected in self.matchers.items()
        )

    def explain(self, event: Event) -> list[str]:
        """Why ``event`` does not match, one line per argument (empty if it does, or
        if it is another hook)."""
        if event.hook != self.name:
            return []
        return [
            _arg_problem(expected, event.args, arg)
            for arg, expected in self.matchers.items()
            if not _arg_matches(expected, event.args, arg)
        ]

    def __repr__(self) -> str:
        args = "".join(f", {k}={_matcher_text(v)}" for k, v in self.matchers.items())
        return f"hook({self.name!r}{args})"


#: An item of an `assert_hook_sequence` pattern.
PatternItem: TypeAlias = str | HookMatcher | EllipsisType


def hook(name: str, **arg_matchers: object) -> HookMatcher:
    """A pattern item for `assert_hook_sequence`: one call of hook ``name`` whose
    arguments match ``arg_matchers``.

    Arguments are named as in ``Event.args`` (Go's names in snake_case; info structs
    are flattened, so ``got_conn`` has ``reused``, ``was_idle``, ``idle_time``). A
    matcher is a value (compared with ``==``), a class (``isinstance``) or a callable
    taking the recorded value and returning true if it matches.

    Example::

        assert_hook_sequence(request, [
            "get_conn",
            hook("got_conn", reused=True, idle_time=lambda s: s < 5),
            ...,
            hook("wrote_request", err=None),
            ...,
        ])

    An unknown hook name raises `ValueError` (with a did-you-mean); an argument the
    hook does not have raises `TypeError` listing the hook's arguments.
    """
    __tracebackhide__ = True
    if name not in HOOK_NAMES:
        raise ValueError(f"hook(): unknown hook name {name!r}.{_did_you_mean(name)}")
    allowed = HOOK_ARGS[name]
    for arg in arg_matchers:
        if arg not in allowed:
            if not allowed:
                raise TypeError(f"hook({name!r}) takes no arguments; got {arg}=...")
            raise TypeError(
                f"hook({name!r}) has no argument {arg!r}. {name}'s arguments: "
                f"{', '.join(allowed)}."
            )
    return HookMatcher(name, arg_matchers)


def _arg_matches(expected: object, args: Mapping[str, object], arg: str) -> bool:
    if arg not in args:
        return False
    value = args[arg]
    try:
        if isinstance(expected, type):
            return isinstance(value, expected)
        if callable(expected):
            return bool(expected(value))
        return bool(value == expected)
    except Exception:
        return False


def _arg_problem(expected: object, args: Mapping[str, object], arg: str) -> str:
    if arg not in args:
        return f"{arg}: not recorded"
    value = args[arg]
    if isinstance(expected, type):
        return (
            f"{arg}: expected an instance of {expected.__name__}, got {_short(value)}"
        )
    if callable(expected):
        call = f"{_callable_name(expected)}({_short(value)})"
        try:
            result = expected(value)
        except Exception as exc:
            return f"{arg}: {call} raised {_short(exc, 60)}"
        return f"{arg}: {call} returned {_short(result)}"
    try:
        equal = bool(value == expected)
    except Exception as exc:
        return f"{arg}: comparing with {_short(expected)} raised {_short(exc, 60)}"
    if equal:  # pragma: no cover - only called for mismatches
        return f"{arg}: matches"
    return f"{arg}: expected {_short(expected)}, got {_short(value)}"


def _matcher_text(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    if callable(value):
        return _callable_name(value)
    return _short(value, 60)


def _callable_name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name.rsplit("<locals>.", 1)[-1]
    return _short(fn, 60)


# -- what a helper was given -----------------------------------------------------------


#: What `assert_hook_sequence` accepts as the recorded side.
Source: TypeAlias = RequestRecord | Recorder | Iterable[Event] | Iterable[RequestRecord]


@dataclass
class _Subject:
    label: str
    events: list[Event]
    multi: bool


def _subject(source: object, fn: str) -> _Subject:
    """The events `assert_hook_sequence` compares, and how to name them."""
    __tracebackhide__ = True
    if isinstance(source, Recorder):
        requests = source.requests
        if not requests:
            _fail(_nothing_recorded(source))
        if len(requests) == 1:
            source = requests[0]
        else:
            return _Subject(
                f"the {len(requests)} requests of the recorder (all their hooks, "
                "in time order)",
                source.events,
                True,
            )
    if isinstance(source, RequestRecord):
        if not source.events:
            _fail(f"request {_req(source)} recorded no hook calls.")
        return _Subject(f"request {_req(source)}", list(source.events), False)
    items = _items(source, fn)
    if not items:
        _fail(_nothing_recorded(None, "the list given is empty"))
    if all(isinstance(x, RequestRecord) for x in items):
        requests = [x for x in items if isinstance(x, RequestRecord)]
        events = _merged_events(requests)
        if not events:
            _fail(_nothing_recorded(None, "the requests given have no hook calls"))
        return _Subject(
            f"the {len(requests)} requests given (all their hooks, in time order)",
            events,
            len(requests) > 1,
        )
    for i, x in enumerate(items):
        if not isinstance(x, Event):
            raise TypeError(
                f"{fn}(): item {i} of the source is {_short(x, 60)} "
                f"({type(x).__name__}); expected Event objects (or RequestRecords)."
            )
    events = [x for x in items if isinstance(x, Event)]
    requests_seen = {id(e.request) for e in events}
    return _Subject(f"the {len(events)} events given", events, len(requests_seen) > 1)


def _items(source: object, fn: str) -> list[object]:
    if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
        raise TypeError(
            f"{fn}() needs a RequestRecord, a Recorder or a list of events, "
            f"got {type(source).__name__} {_short(source, 60)}."
        )
    return list(source)


def _merged_events(requests: Iterable[RequestRecord]) -> list[Event]:
    events = [e for r in requests for e in r.events]
    events.sort(key=lambda e: (e.time, e.index))
    return events


def _requests(
    source: object, fn: str, *, allow_empty: bool = False
) -> list[RequestRecord]:
    """The requests a helper looks at: a recorder's (current phase), or those given.
    Fails if there are none, unless ``allow_empty``."""
    __tracebackhide__ = True
    if isinstance(source, RequestRecord):
        return [source]
    if isinstance(source, Recorder):
        requests = source.requests
        if not requests and not allow_empty:
            _fail(_nothing_recorded(source))
        return requests
    items = _items(source, fn)
    for i, x in enumerate(items):
        if not isinstance(x, RequestRecord):
            raise TypeError(
                f"{fn}(): item {i} is {_short(x, 60)} ({type(x).__name__}); "
                "expected a Recorder or RequestRecords."
            )
    if not items and not allow_empty:
        _fail(_nothing_recorded(None, "the list of requests given is empty"))
    return [x for x in items if isinstance(x, RequestRecord)]


def _one_request(source: object, fn: str) -> RequestRecord:
    if not isinstance(source, RequestRecord):
        raise TypeError(
            f"{fn}() takes one request (a RequestRecord, e.g. "
            f"httptrace_recorder.requests[0]), got {type(source).__name__}."
        )
    return source


def _nothing_recorded(recorder: Recorder | None, detail: str | None = None) -> str:
    from .sources import diagnose_all

    known = diagnose_all()
    lines = [
        "no request was recorded"
        + (f" ({detail})." if detail else ".")
        + (" What went past the recorder:" if known else " Likely causes:")
    ]
    if known:
        lines += [f"  - {line}" for line in known]
    else:
        lines += [
            "  - the request ran in a thread that does not see the trace: "
            "with_client_trace() follows the context (run the thread's target in "
            "contextvars.copy_context(), or use the httptrace_recorder fixture, "
            "which records every thread);",
            "  - the client is not one that pytest-httptrace traces (httpx, httpx2, "
            "aiohttp, urllib3 and requests are; see the support matrix);",
            "  - the plugin is disabled or the instrumentation is not installed (with "
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1, run pytest with -p httptrace), or the "
            "recorder was not recording (Recorder.start() ... stop()).",
        ]
    if recorder is not None:
        phases: dict[str, int] = {}
        for r in recorder.all_requests:
            phases[r.phase] = phases.get(r.phase, 0) + 1
        others = [f"{n} in {p}" for p, n in phases.items() if p != recorder.phase]
        if others:
            lines.append(
                f"Requests were recorded in other phases ({', '.join(others)}): "
                "see recorder.get_records(phase)."
            )
    return "\n".join(lines)


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    raise AssertionError(message)


# -- the pattern matcher ---------------------------------------------------------------


@dataclass
class _Row:
    """One line of a transcript: what was compared with what."""

    label: str
    expected: str
    recorded: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    ok: bool
    rows: list[_Row] = field(default_factory=list)
    comparisons: int = 0
    summary: str = ""
    diverged: str = ""
    remains: list[PatternItem] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    focus: int | None = None
    #: The first pattern item that matches no hook from where it was looked for on:
    #: a hook that never ran (the message then says what happened instead).
    missing: HookMatcher | str | None = None


def _item_text(item: PatternItem) -> str:
    return "..." if item is ... else repr(item)


def _match(
    pattern: Sequence[PatternItem],
    events: Sequence[Event],
    describe: Callable[[int, bool], str] | None = None,
) -> _Outcome:
    """Match ``events`` against ``pattern`` and log a transcript of the comparisons.

    The pattern is a glob: ``...`` is any run of events, every other item exactly one
    event, and it is anchored at both ends. The runs of items between ``...`` are
    placed at their earliest possible position, which is complete for globs (if any
    match exists, this one does); the run after the last ``...`` sits at the very end
    when the pattern does not end with ``...``. That makes at most about
    ``len(events) * len(pattern)`` item comparisons (counted in the outcome), with
    no backtracking. ``describe(pos, full)`` names the event at ``pos`` for the
    transcript, with its arguments when ``full``.
    """
    n = len(events)
    out = _Outcome(ok=False)
    text = describe or (lambda pos, full: f"[{pos}] {events[pos].hook}")

    def same(i: int, pos: int) -> bool:
        out.comparisons += 1
        item = pattern[i]
        if type(item) is str:
            return events[pos].hook == item
        assert isinstance(item, HookMatcher)
        return item.matches(events[pos])

    def notes(i: int, pos: int) -> list[str]:
        item = pattern[i]
        return item.explain(events[pos]) if isinstance(item, HookMatcher) else []

    def matched(i: int, pos: int) -> None:
        out.rows.append(_Row("matched:", _item_text(pattern[i]), text(pos, True)))

    def skipped(start: int, stop: int) -> None:
        if stop <= start:
            recorded = "(no hooks)"
        elif stop - start == 1:
            recorded = text(start, False)
        else:
            recorded = (
                f"{text(start, False)} .. {text(stop - 1, False)} "
                f"({stop - start} hooks)"
            )
        out.rows.append(_Row("skipped:", "...", recorded))

    def and_rows(i: int | None, start: int) -> None:
        """``and:`` lines for the events from ``start`` on (pytester's style)."""
        shown = min(n, start + _MAX_AND_LINES)
        for pos in range(start, shown):
            why = [] if i is None else notes(i, pos)
            out.rows.append(_Row("and:", "", text(pos, True), why))
        if shown < n:
            rest = f"... {n - shown} more, up to {text(n - 1, False)}"
            out.rows.append(_Row("and:", "", rest))

    def diverge(i: int, pos: int) -> None:
        """Item ``pattern[i]`` did not match the event at ``pos`` (or there is none)."""
        out.remains = list(pattern[i:])
        expected = _item_text(pattern[i])
        if pos >= n:
            out.rows.append(_Row("nomatch:", expected, "(end of the recording)"))
            out.summary = f"the recording ended after {n} hooks"
            after = f" after {text(n - 1, False)}" if n else ""
            out.diverged = (
                f"diverged at the end of the recording: expected {expected}{after}"
            )
            out.focus = n - 1 if n else None
            return
        out.rows.append(_Row("nomatch:", expected, text(pos, True), notes(i, pos)))
        out.summary = f"diverged at {text(pos, False)}"
        out.diverged = f"diverged at {text(pos, False)}: expected {expected}"
        out.focus = pos

    def compare_at(segment: list[int], start: int, *, hint: bool = False) -> bool:
        for j, i in enumerate(segment):
            pos = start + j
            if pos >= n or not same(i, pos):
                diverge(i, pos)
                if hint and pos < n:
                    hint_later(i, pos)
                return False
            matched(i, pos)
        return True

    def search(segment: list[int], start: int) -> tuple[int | None, int, int]:
        """Earliest position of ``segment`` from ``start``; else the closest attempt
        (its position, how many leading items matched there)."""
        best_pos, best_len = start, 0
        for q in range(start, n):
            j = 0
            while j < len(segment) and q + j < n and same(segment[j], q + j):
                j += 1
            if j == len(segment):
                return q, 0, 0
            if j > best_len:
                best_pos, best_len = q, j
        return None, best_pos, best_len

    def fits(segment: list[int], start: int) -> bool:
        """Whether ``segment`` matches the events from ``start`` to the end."""
        return start + len(segment) == n and all(
            same(i, start + j) for j, i in enumerate(segment)
        )

    def tail_run(segment: list[int], start: int) -> int:
        """The largest k < len(segment) such that the first k items of ``segment``
        match the last k events (at or after ``start``); 0 if none."""
        for k in range(min(len(segment) - 1, n - start), 0, -1):
            if same(segment[k - 1], n - 1) and all(
                same(segment[j], n - k + j) for j in range(k - 1)
            ):
                return k
        return 0

    def names(segment: list[int]) -> str:
        return ", ".join(_item_text(pattern[i]) for i in segment)

    def hint_later(i: int, pos: int) -> None:
        """After an anchored mismatch: the item would match further on."""
        later = next((q for q in range(pos + 1, n) if same(i, q)), None)
        if later is not None:
            out.hints.append(
                f"{_item_text(pattern[i])} matches {text(later, False)}; to skip the "
                f"{later - pos} hook{'s' if later - pos != 1 else ''} before it, put "
                "... in front of it in the pattern."
            )

    # The runs of items between `...` (as indices into the pattern).
    segments: list[list[int]] = []
    current: list[int] = []
    for i, item in enumerate(pattern):
        if item is ...:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(i)
    if current:
        segments.append(current)
    leading = bool(pattern) and pattern[0] is ...
    trailing = bool(pattern) and pattern[-1] is ...

    if not pattern:
        if n == 0:
            out.ok = True
            return out
        out.rows.append(_Row("nomatch:", "(empty pattern)", text(0, True)))
        and_rows(None, 1)
        out.summary = "the pattern is empty"
        out.diverged = f"diverged at {text(0, False)}: the pattern is empty"
        out.focus = 0
        return out

    p = 0  # the first event not consumed yet
    for s, segment in enumerate(segments):
        first = s == 0 and not leading
        last = s == len(segments) - 1 and not trailing
        if first:
            if not compare_at(segment, 0, hint=True):
                return out
            p = len(segment)
            if last and p < n:
                out.rows.append(_Row("nomatch:", "(end of the pattern)", text(p, True)))
                and_rows(None, p + 1)
                extra = n - p
                hooks = f"{extra} more hook{'s' if extra != 1 else ''}"
                out.summary = f"{hooks} than the pattern"
                out.diverged = (
                    f"diverged at {text(p, False)}: the pattern ended, but {hooks} "
                    f"{'were' if extra != 1 else 'was'} recorded"
                )
                out.hints.append("end the pattern with ... to allow hooks after it.")
                out.focus = p
                return out
        elif last:
            q = max(p, n - len(segment))
            ok = fits(segment, q)
            k = 0 if ok else tail_run(segment, p)
            if not ok and (k or not any(same(segment[0], x) for x in range(p, n))):
                # The recording ends with the first k items (maybe none) of the
                # segment, and its next item matches nothing: it never ran.
                skipped(p, n - k)
                for j in range(k):
                    matched(segment[j], n - k + j)
                item = pattern[segment[k]]
                assert isinstance(item, (str, HookMatcher))
                expected = _item_text(item)
                out.rows.append(_Row("nomatch:", expected, "(end of the recording)"))
                out.remains = list(pattern[segment[k] :])
                out.summary = f"{expected} never ran"
                last_hook = f" after {text(n - 1, False)}" if n else ""
                out.diverged = (
                    "diverged at the end of the recording: "
                    f"{expected} never ran{last_hook}"
                )
                out.missing = item
                out.focus = n - 1 if n else None
                return out
            skipped(p, q)
            if not compare_at(segment, q):
                found, _, _ = search(segment, p)
                if found is not None:
                    after = n - found - len(segment)
                    out.hints.append(
                        f"{names(segment)} matches at [{found}], but the pattern "
                        f"must end with the last hooks recorded and {after} came "
                        "after it: end the pattern with ... to allow them."
                    )
                return out
            p = n
        else:
            found, best_pos, best_len = search(segment, p)
            if found is not None:
                skipped(p, found)
                for j, i in enumerate(segment):
                    matched(i, found + j)
                p = found + len(segment)
                continue
            if best_len == 0:
                i = segment[0]
                diverge(i, p)
                item = pattern[i]
                assert isinstance(item, (str, HookMatcher))
                out.missing = item
                if p < n:
                    searched = f"no hook from [{p}] on matches {_item_text(item)}"
                    out.summary, out.diverged = searched, f"diverged: {searched}"
                    and_rows(i, p + 1)
                return out
            skipped(p, best_pos)
            for j in range(best_len):
                matched(segment[j], best_pos + j)
            diverge(segment[best_len], best_pos + best_len)
            out.hints.append(
                f"no position from [{p}] on matches {names(segment)} in a row; the "
                "closest attempt is shown."
            )
            return out
    if trailing:
        skipped(p, n)
    out.ok = True
    return out


def _check_pattern(expected: object) -> list[PatternItem]:
    __tracebackhide__ = True
    if isinstance(expected, (str, bytes)) or not isinstance(expected, Sequence):
        raise TypeError(
            "assert_hook_sequence(): expected must be a list of hook names, hook(...) "
            f"and ..., got {type(expected).__name__} {_short(expected, 60)}."
        )
    items: list[PatternItem] = []
    for i, item in enumerate(expected):
        if isinstance(item, str):
            if item not in HOOK_NAMES:
                raise ValueError(
                    f"assert_hook_sequence(): item {i} of the pattern, {item!r}, is "
                    f"not a hook name.{_did_you_mean(item)}"
                )
            items.append(item)
        elif isinstance(item, HookMatcher) or item is ...:
            items.append(item)
        else:
            raise TypeError(
                f"assert_hook_sequence(): item {i} of the pattern is "
                f"{_short(item, 60)} ({type(item).__name__}); expected a hook name "
                "(str), hook(...) or ... (Ellipsis)."
            )
    return items


def _names(pattern: Iterable[PatternItem]) -> set[str]:
    names: set[str] = set()
    for item in pattern:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, HookMatcher):
            names.add(item.name)
    return names


def assert_hook_sequence(source: Source, expected: Sequence[PatternItem]) -> None:
    """Assert that the hooks recorded match ``expected``, a glob over hook calls.

    ``source`` is a `RequestRecord`, a `Recorder` (its one request; with several,
    all events of the current phase in time order, requests interleaved) or a list
    of events (compared in the order given). ``expected`` is a list of:

    - a hook name: one call of that hook;
    - ``hook(name, **matchers)``: one call of that hook with matching arguments;
    - ``...``: any run of hook calls, possibly none.

    The pattern is anchored: without a leading (trailing) ``...`` it must match from
    the first (to the last) hook. ``wrote_header_field`` calls are left out unless the
    pattern names that hook, so patterns do not spell out every request header.

    Example::

        first, second = httptrace_recorder.requests
        assert_hook_sequence(first, [
            "get_conn", "dns_start", "dns_done", ..., hook("got_conn", reused=False),
            "wrote_headers", "wrote_request", "got_first_response_byte", ...,
        ])
        assert_hook_sequence(second, ["get_conn", hook("got_conn", reused=True), ...])

    On failure the message is a transcript in the style of pytester's
    ``fnmatch_lines`` (what matched, where it diverged, what remains unmatched),
    followed by a timeline of the recorded hooks. An unknown hook name raises
    `ValueError`, an item that is not a pattern item `TypeError`.
    """
    __tracebackhide__ = True
    pattern = _check_pattern(expected)
    subject = _subject(source, "assert_hook_sequence")
    skip = OPT_IN_HOOKS - _names(pattern)
    compared = [e for e in subject.events if e.hook not in skip]
    positions = {e: pos for pos, e in enumerate(compared)}

    def describe(pos: int, full: bool) -> str:
        event = compared[pos]
        if full:
            return f"[{pos}] {_event_text(event, with_request=subject.multi)}"
        who = f"#{event.request.id} " if subject.multi and event.request else ""
        return f"[{pos}] {who}{event.hook}"

    outcome = _match(pattern, compared, describe)
    if outcome.ok:
        return
    lines = [f"hooks of {subject.label} do not match the pattern ({outcome.summary}):"]
    lines += _render_rows(outcome.rows)
    lines.append(outcome.diverged)
    if outcome.remains:
        remains = ", ".join(_item_text(item) for item in outcome.remains)
        lines.append(f"remains unmatched: {remains}")
    if outcome.missing is not None:
        lines += _never_ran(outcome.missing, subject)
    lines += [f"hint: {h}" for h in outcome.hints]
    left_out = len(subject.events) - len(compared)
    if left_out:
        calls = "call" if left_out == 1 else "calls"
        lines.append(
            f"(not compared: {left_out} wrote_header_field {calls}; a pattern that "
            "names wrote_header_field compares them)"
        )
    focus = compared[outcome.focus] if outcome.focus is not None and compared else None
    lines.append("")
    lines += _timeline(subject.events, positions=positions, focus=focus)
    _fail("\n".join(lines))


def _never_ran(item: HookMatcher | str, subject: _Subject) -> list[str]:
    """For a hook that never ran: what happened instead (to the response and its
    connection), and why the hook may be absent."""
    name = item if isinstance(item, str) else item.name
    requests = {id(e.request): e.request for e in subject.events if e.request}
    if subject.multi or len(requests) != 1:
        return []
    [request] = requests.values()
    ran = any(e.hook == name for e in request.events)
    lines = []
    if not ran:
        lines.append(f"{name} never ran: {_what_happened(request)}.")
        if name in _MISSING_HINTS:
            lines.append(f"hint: {_MISSING_HINTS[name]}")
    return lines


def _what_happened(request: RequestRecord) -> str:
    """What became of a request's response and connection, in a sentence."""
    t0 = min(e.time for e in request.events)
    conn = request.connection
    parts: list[str] = []
    if _got_conn(request) is None:
        parts.append("the request never got a connection")
    elif request.closed_at is not None:
        back = any(e.hook == "put_idle_conn" for e in request.events)
        parts.append(
            f"the response was closed at {_ms(request.closed_at, t0)} "
            f"{'going back' if back else 'without going back'} to the pool"
        )
    elif _is_leak(request):
        parts.append("the response was never closed: its connection is still taken")
    if request.error is not None:
        parts.append(f"the call raised {_short(request.error, 80)}")
    if conn is not None and conn.protocol == "HTTP/2":
        parts.append(
            f"its connection {_conn_label(request)} is HTTP/2, which is never put "
            "back idle"
        )
    elif conn is not None and conn.closed_at is not None:
        parts.append(
            f"its connection {_conn_label(request)} was closed at "
            f"{_ms(conn.closed_at, t0)}"
        )
    if not parts:
        return f"the recording of request #{request.id} ends with {request.hooks[-1]}"
    return "; ".join(parts)


def _render_rows(rows: Sequence[_Row]) -> list[str]:
    width = min(max((len(r.expected) for r in rows), default=0), 44)
    lines = []
    indent = " " * (2 + 8 + 1 + width + 2 + 4)
    for r in rows:
        lines.append(f"  {r.label:>8} {r.expected:<{width}}  {r.recorded}".rstrip())
        lines += [indent + note for note in r.notes]
    return lines


# -- order, concurrency, connections ---------------------------------------------------


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


#: Why a hook may be missing from a request, for "has no ... call" messages.
_MISSING_HINTS = {
    "put_idle_conn": "put_idle_conn runs only when an HTTP/1.1 connection goes back "
    "to the idle pool: not for HTTP/2, not after `Connection: close`, and for a "
    "streamed response only once it was read or closed.",
    "dns_start": "DNS hooks run only when a new connection is dialed to a host name "
    "(not an IP address).",
    "connect_start": "connect hooks run only when a new connection is dialed.",
    "tls_handshake_start": "TLS hooks run only when a new https connection is dialed.",
    "got_100_continue": "got_100_continue runs only for a request sent with "
    "`Expect: 100-continue` whose server answered 100 Continue.",
}


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


def _got_conn(request: RequestRecord) -> Event | None:
    for e in request.events:
        if e.hook == "got_conn":
            return e
    return None


def _conn_label(request: RequestRecord) -> str:
    if request.connection is not None:
        return f"c{request.connection.id}"
    return "-"


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
    from ._reuse import reuse_verdict

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
    from ._reuse import reuse_verdict

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


# -- leaks -----------------------------------------------------------------------------


def _is_leak(request: RequestRecord) -> bool:
    return is_leak(request)


def find_leaks(
    source: Recorder | RequestRecord | Iterable[RequestRecord],
) -> list[RequestRecord]:
    """The requests that took a connection and whose response was never closed.

    Such a response keeps its connection checked out of the pool (an HTTP/1.1
    connection cannot serve another request; the socket stays open). A request whose
    call raised before it had a response is not a leak. ``source`` is a recorder (its
    current phase) or requests, e.g. ``recorder.get_records("setup")``.

    Example::

        response = client.send(client.build_request("GET", url), stream=True)
        assert find_leaks(httptrace_recorder) == httptrace_recorder.requests
        response.close()
        assert find_leaks(httptrace_recorder) == []
    """
    if isinstance(source, Recorder):
        requests = source.requests
    elif isinstance(source, RequestRecord):
        requests = [source]
    else:
        requests = list(source)
    return [r for r in requests if _is_leak(r)]


def assert_no_leaks(source: Recorder | RequestRecord | Iterable[RequestRecord]) -> None:
    """Assert that every response that took a connection was closed (`find_leaks`).

    Example::

        with client.stream("GET", url) as response:
            for chunk in response.iter_bytes():
                ...
        assert_no_leaks(httptrace_recorder)
    """
    __tracebackhide__ = True
    requests = _requests(source, "assert_no_leaks")
    leaks = [r for r in requests if _is_leak(r)]
    if not leaks:
        return
    if len(leaks) == 1:
        lines = [
            "1 response was never closed: its connection was taken and not given back:"
        ]
    else:
        lines = [
            f"{len(leaks)} responses were never closed: their connections were taken "
            "and not given back:"
        ]
    for r in leaks:
        parts = [f"status {r.status}" if r.status is not None else "no status"]
        parts.append(f"connection {_conn_label(r)}")
        if r.origin:
            parts.append(f"made at {_made_at(r)}")
        lines.append(f"  {_req(r)}  ({', '.join(parts)})")
    from .sources import leak_hint

    hints = [
        hint
        for name in dict.fromkeys(r.source.name if r.source else None for r in leaks)
        if (hint := leak_hint(name)) is not None
    ]
    for hint in hints or [_LEAK_HINT]:
        lines.append(f"hint: {hint}")
    _fail("\n".join(lines))


#: What to do about a leak whose client library says nothing of its own.
_LEAK_HINT = (
    "close the response when done with it (a `with` block around the request, or "
    "its close/release method): that gives its connection back to the pool."
)


# -- the timeline ----------------------------------------------------------------------


def render_timeline(
    source: Recorder | RequestRecord | Iterable[RequestRecord] | Iterable[Event],
    *,
    collapse_header_fields: bool = True,
    max_events: int | None = None,
) -> str:
    """The recorded hook calls as an aligned timeline, one line per call.

    Columns: milliseconds since the first call, request id, connection id, thread
    (and asyncio task), hook and its arguments (long values abbreviated; the
    connection object is left out, its id has a column). A legend above names each
    request (method, URL, outcome, the line of code that made it). Consecutive
    ``wrote_header_field`` calls of a request are folded into one line unless
    ``collapse_header_fields`` is false; ``max_events`` keeps the first and last
    lines of a long timeline.

    Example::

        print(render_timeline(httptrace_recorder))

    prints::

        requests:
          #1 GET https://localhost:4443/  (status 200, returned at 9.100 ms)
        timeline (ms since the first hook call):
              ms  req  conn  thread      hook
           0.000  #1   c1    MainThread  get_conn host_port='localhost:4443'
           ...
    """
    if isinstance(source, Recorder):
        events = source.events
    elif isinstance(source, RequestRecord):
        events = list(source.events)
    else:
        items = list(source)
        if all(isinstance(x, RequestRecord) for x in items):
            events = _merged_events(x for x in items if isinstance(x, RequestRecord))
        else:
            events = [x for x in items if isinstance(x, Event)]
            if len(events) != len(items):
                raise TypeError(
                    "render_timeline() needs a Recorder, RequestRecords or Events."
                )
    if not events:
        return "(no request was recorded)"
    return "\n".join(
        _timeline(events, collapse=collapse_header_fields, max_entries=max_events)
    )


def _requests_not_shown(
    message: str, requests: Iterable[RequestRecord]
) -> list[RequestRecord]:
    """The requests whose timeline ``message`` does not show: all of them if it has
    no timeline, else those its legend does not name. The plugin's report section
    uses it so that a failure prints each timeline once."""
    requests = list(requests)
    # Assertion rewriting marks the lines of a message with "~" and indents them
    # (`assert ok, render_timeline(...)`): compare the lines stripped of both.
    lines = [line.lstrip(" ~") for line in message.splitlines()]
    if _TIMELINE_HEADER not in lines:
        return requests
    legend = lines[: lines.index(_TIMELINE_HEADER)]
    named = {line.partition("  (")[0] for line in legend}
    return [r for r in requests if _req(r) not in named]


#: The line that starts every timeline, after its legend of requests.
_TIMELINE_HEADER = "timeline (ms since the first hook call):"


class _Entry(NamedTuple):
    """One line of a timeline: ``events[start:stop]`` (one event, or a run of header
    fields folded together) and the position of that event in a pattern match."""

    start: int
    stop: int
    position: int | None

    def text(self, events: Sequence[Event]) -> str:
        first = events[self.start]
        if self.stop - self.start > 1:
            run = events[self.start : self.stop]
            keys = ", ".join(str(e.args.get("key", "?")) for e in run)
            text = _clip(f"wrote_header_field x{len(run)}: {keys}", 80)
        else:
            text = _event_text(first)
        return text + ("  (after return)" if first.after_return else "")


def _entries(
    events: Sequence[Event], positions: Mapping[Event, int] | None, collapse: bool
) -> list[_Entry]:
    entries: list[_Entry] = []
    folding = False  # whether the last entry is a foldable header field
    for i, e in enumerate(events):
        position = None if positions is None else positions.get(e)
        foldable = collapse and position is None and e.hook == "wrote_header_field"
        if folding and foldable and events[i - 1].request is e.request:
            entries[-1] = entries[-1]._replace(stop=i + 1)
        else:
            entries.append(_Entry(i, i + 1, position))
        folding = foldable
    return entries


def _window(
    events: Sequence[Event],
    entries: Sequence[_Entry],
    focus: Event | None,
    max_entries: int | None,
) -> list[int | None]:
    """Indices of the entries to show; None where lines are left out. A long
    timeline keeps its first and last 3 lines and the lines around ``focus``."""
    count = len(entries)
    if max_entries is None or count <= max_entries:
        return list(range(count))
    center = 0
    if focus is not None:
        center = next(
            (
                i
                for i, entry in enumerate(entries)
                if events[entry.start] is focus or events[entry.start].time > focus.time
            ),
            count - 1,
        )
    half = max(1, (max_entries - 6) // 2)
    keep = set(range(3)) | set(range(count - 3, count))
    keep |= set(range(max(0, center - half), min(count, center + half + 1)))
    shown: list[int | None] = []
    for i in sorted(keep):
        if shown and shown[-1] != i - 1:
            shown.append(None)
        shown.append(i)
    return shown


def _timeline(
    events: Sequence[Event],
    *,
    positions: Mapping[Event, int] | None = None,
    focus: Event | None = None,
    collapse: bool = True,
    max_entries: int | None = _MAX_TIMELINE,
) -> list[str]:
    """The legend of requests, then one aligned line per entry (see
    `render_timeline`); with ``positions``, a first column gives each compared
    event's position in the pattern match."""
    entries = _entries(events, positions, collapse)
    shown = _window(events, entries, focus, max_entries)
    t0 = min(e.time for e in events)

    header = ["ms", "req", "conn", "thread", "hook"]
    rows: list[list[str] | None] = []
    for i in shown:
        if i is None:
            rows.append(None)
            continue
        entry = entries[i]
        e = events[entry.start]
        r = e.request
        row = [
            f"{(e.time - t0) * 1000:.3f}",
            f"#{r.id}" if r is not None else "-",
            _conn_label(r) if r is not None else "-",
            e.thread if not e.task else f"{e.thread}/{e.task}",
            entry.text(events),
        ]
        if positions is not None:
            row.insert(0, "" if entry.position is None else f"[{entry.position}]")
        rows.append(row)
    if positions is not None:
        header.insert(0, "")
    widths = [
        max([len(header[c])] + [len(row[c]) for row in rows if row is not None])
        for c in range(len(header))
    ]
    ms_column = header.index("ms")

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(widths[c]) if c == ms_column else cell.ljust(widths[c])
            for c, cell in enumerate(cells[:-1])
        ]
        return "  " + "  ".join([*padded, cells[-1]])

    # The legend names the requests of the lines shown (at most 20 of them).
    requests = {id(e.request): e.request for e in events if e.request is not None}
    shown_ids = {
        id(events[entries[i].start].request) for i in shown if i is not None
    } & requests.keys()
    listed = sorted((requests[k] for k in shown_ids), key=lambda r: r.id)[:20]
    lines = ["requests:"]
    # Which library made each request, once more than one is in play.
    several = len({str(r.source) for r in requests.values()}) > 1
    lines += [
        f"  {_req(r)}  ({_outcome(r, t0)})" + (f"  [{r.source}]" if several else "")
        for r in listed
    ]
    if len(requests) > len(listed):
        lines.append(f"  ... and {len(requests) - len(listed)} more")
    if not requests:
        lines.append("  (events not attributed to a request)")
    lines.append(_TIMELINE_HEADER)
    lines.append(line(header).rstrip())
    for k, (i, cells) in enumerate(zip(shown, rows, strict=True)):
        if i is None or cells is None:
            before, after = shown[k - 1], shown[k + 1]
            assert before is not None and after is not None
            lines.append(f"  ... ({after - before - 1} more lines)")
        else:
            lines.append(line(cells).rstrip())
    return lines


def _outcome(request: RequestRecord, t0: float) -> str:
    parts = []
    if request.answered_by is not None:
        parts.append(f"answered by {request.answered_by}: mocked, no connection")
    if request.status is not None:
        parts.append(f"status {request.status}")
    if request.error is not None:
        parts.append(f"error {_short(request.error, 60)}")
    if request.returned_at is not None:
        parts.append(f"returned at {_ms(request.returned_at, t0)}")
    if request.closed_at is not None:
        parts.append(f"closed at {_ms(request.closed_at, t0)}")
    elif _is_leak(request):
        parts.append("never closed")
    if request.origin:
        parts.append(f"made at {_made_at(request)}")
    return ", ".join(parts) if parts else "no outcome recorded"


# -- small formatting helpers ----------------------------------------------------------


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _req(request: RequestRecord) -> str:
    return f"#{request.id} {request.method} {request.url}"


def _at(request: RequestRecord) -> str:
    return f" (made at {_made_at(request)})" if request.origin else ""


def _made_at(request: RequestRecord) -> str:
    """The user's line (relative), with the libraries in between."""
    where = _origin(request.origin) if request.origin else "?"
    return f"{where} (via {', '.join(request.via)})" if request.via else where


def _ms(t: float | None, t0: float) -> str:
    if t is None:
        return "?"
    return f"{(t - t0) * 1000:.3f} ms"


def _origin(origin: str) -> str:
    """``file:line`` relative to the working directory when it is below it."""
    path, sep, line = origin.rpartition(":")
    if not sep or not line.isdigit() or not os.path.isabs(path):
        return origin
    try:
        relative = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return origin
    return origin if relative.startswith("..") else f"{relative}:{line}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: object, limit: int = 40) -> str:
    """A short, stable repr: no memory addresses, long values clipped."""
    if isinstance(value, TLSConnectionState):
        if not value.handshake_complete:
            text = "<no handshake>"
        else:
            parts = (value.version, value.negotiated_protocol)
            text = "<" + " ".join(str(p) for p in parts if p) + ">"
    elif isinstance(value, float):
        text = repr(round(value, 6))
    elif isinstance(value, (bytes, bytearray)) and len(value) > 16:
        text = f"<{len(value)} bytes>"
    else:
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__ must not hide the failure
            text = f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return _clip(_ADDRESS.sub("", text), limit)


def _event_text(event: Event, *, with_request: bool = False) -> str:
    """``hook arg=value ...``: the connection object left out, ``err`` only when
    set, ``idle_time`` only for an idle connection, header fields as ``key: value``."""
    prefix = f"#{event.request.id} " if with_request and event.request else ""
    args = event.args
    if event.hook == "wrote_header_field" and "key" in args:
        values = args.get("values")
        if isinstance(values, (list, tuple)):
            shown = ", ".join(str(v) for v in values)
        else:
            shown = _short(values)
        return prefix + _clip(f"wrote_header_field {args['key']}: {shown}", 70)
    parts: list[str] = [event.hook]
    for name, value in args.items():
        if name == "conn":
            continue
        if value is None and name == "err":
            continue
        if name == "idle_time" and not args.get("was_idle"):
            continue
        if name == "coalesced" and value is False:
            continue
        parts.append(f"{name}={_short(value)}")
    return prefix + " ".join(parts)


# -- phase budgets ---------------------------------------------------------------------

#: A phase budget: seconds (an upper bound), or a ``(min, max)`` pair of seconds
#: (either may be None: no bound on that side).
Budget: TypeAlias = "float | tuple[float | None, float | None]"


def _check_budgets(
    budgets: Mapping[str, object],
) -> dict[str, tuple[float | None, float | None]]:
    __tracebackhide__ = True
    from ._phases import PHASE_NAMES

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
    from .waterfall import format_ms

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
    from ._phases import durations
    from .waterfall import format_ms

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
