"""`assert_hook_sequence` and its glob matcher: hook names, `hook()` matchers and
``...`` (any run of hooks) against the recorded hooks, with the match transcript.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from .._ends import CLOSE_TEXT
from ..recorder import Event, RequestRecord
from ..trace import ALL_HOOK_NAMES, END_HOOK_NAMES, _did_you_mean
from ._format import _conn_label, _event_text, _got_conn, _ms, _short
from ._leaks import _is_leak
from ._matcher import HookMatcher, PatternItem
from ._subject import Source, _fail, _Subject, _subject
from ._timeline import _timeline

#: Hooks compared by `assert_hook_sequence` only when the pattern names them.
#: ``wrote_header_field`` runs once per request header: a dozen calls that would
#: otherwise make every pattern spell out the headers.
OPT_IN_HOOKS: frozenset[str] = frozenset({"wrote_header_field"})

#: Our end hooks (`END_HOOK_NAMES`), derived from the records (`RequestRecord.ends`):
#: compared, merged with the recorded hooks in time order, only when the pattern
#: names one of them.
_END_HOOKS: frozenset[str] = frozenset(END_HOOK_NAMES)

#: Past this many ``and:`` lines, a transcript says how many more there were.
_MAX_AND_LINES = 12

#: A transcript of more rows than `_HEAD_ROWS` + `_TAIL_ROWS` (a long pattern over a
#: long recording) shows its first and its last rows, and in between how many rows
#: were left out and which hooks they covered. The divergence is always among the
#: last rows (only ``and:`` rows, at most `_MAX_AND_LINES` + 1, come after it), so
#: the tail shows it with the rows that led to it.
_HEAD_ROWS = 10
_TAIL_ROWS = 30

#: Past this many items, a list of pattern items (``remains unmatched:``, hints)
#: says how many more there were.
_MAX_ITEMS = 20


@dataclass
class _Row:
    """One line of a transcript: what was compared with what."""

    label: str
    expected: str
    recorded: str
    notes: list[str] = field(default_factory=list)


class _Gap(NamedTuple):
    """The rows a long transcript leaves out: how many, and the positions of the
    first and last hooks they cover (None if they cover none)."""

    rows: int
    first: int | None
    last: int | None


#: A row not made yet: what makes it, and the positions of the first and last hooks
#: it covers (``last < first`` for none).
_Pending: TypeAlias = tuple[Callable[[], _Row], int, int]


class _Transcript:
    """The rows of a match in bounded space: all of them up to `_HEAD_ROWS` +
    `_TAIL_ROWS`, else the first and the last rows and a `_Gap` for those in
    between. A row is made (its hooks described) only when `shown`."""

    def __init__(self) -> None:
        self._head: list[_Pending] = []
        self._tail: deque[_Pending] = deque(maxlen=_TAIL_ROWS)
        self._left_out = 0
        self._first: int | None = None
        self._last: int | None = None

    def __len__(self) -> int:
        """How many rows were logged, shown or not."""
        return len(self._head) + self._left_out + len(self._tail)

    def add(self, make: Callable[[], _Row], first: int, last: int) -> None:
        if len(self._head) < _HEAD_ROWS:
            self._head.append((make, first, last))
            return
        tail = self._tail
        if len(tail) == _TAIL_ROWS:  # its first row falls into the gap
            _, a, b = tail[0]
            self._left_out += 1
            if b >= a:
                if self._first is None:
                    self._first = a
                self._last = b
        tail.append((make, first, last))

    def shown(self) -> list[_Row | _Gap]:
        rows: list[_Row | _Gap] = [make() for make, _, _ in self._head]
        if self._left_out:
            rows.append(_Gap(self._left_out, self._first, self._last))
        rows += [make() for make, _, _ in self._tail]
        return rows


@dataclass
class _Outcome:
    ok: bool
    rows: _Transcript = field(default_factory=_Transcript)
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


def _items_text(items: Sequence[PatternItem]) -> str:
    """Pattern items, comma-separated; past `_MAX_ITEMS`, how many more there are."""
    text = ", ".join(_item_text(item) for item in items[:_MAX_ITEMS])
    more = len(items) - _MAX_ITEMS
    return text if more <= 0 else f"{text}, ... ({more} more)"


def _match(
    pattern: Sequence[PatternItem],
    events: Sequence[Event],
    describe: Callable[[int, bool], str] | None = None,
    *,
    log: bool = True,
) -> _Outcome:
    """Match ``events`` against ``pattern`` and log a transcript of the comparisons.

    The pattern is a glob: ``...`` is any run of events, every other item exactly one
    event, and it is anchored at both ends. The runs of items between ``...`` are
    placed at their earliest possible position, which is complete for globs (if any
    match exists, this one does); the run after the last ``...`` sits at the very end
    when the pattern does not end with ``...``. That makes at most about
    ``len(events) * len(pattern)`` item comparisons (counted in the outcome), with
    no backtracking. ``describe(pos, full)`` names the event at ``pos`` for the
    transcript, with its arguments when ``full``. Without ``log`` no transcript row
    is made (``rows`` stays empty): a passing assertion matches so, and only a
    failing one matches again with the transcript.
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

    def add(row: Callable[[], _Row], first: int, last: int) -> None:
        """Log a row covering the hooks at ``first`` to ``last`` (made if shown)."""
        if log:
            out.rows.add(row, first, last)

    def notes(i: int, pos: int) -> list[str]:
        item = pattern[i]
        return item.explain(events[pos]) if isinstance(item, HookMatcher) else []

    def matched(i: int, pos: int) -> None:
        if log:
            add(
                lambda: _Row("matched:", _item_text(pattern[i]), text(pos, True)),
                pos,
                pos,
            )

    def skipped(start: int, stop: int) -> None:
        def row() -> _Row:
            if stop <= start:
                recorded = "(no hooks)"
            elif stop - start == 1:
                recorded = text(start, False)
            else:
                recorded = (
                    f"{text(start, False)} .. {text(stop - 1, False)} "
                    f"({stop - start} hooks)"
                )
            return _Row("skipped:", "...", recorded)

        add(row, start, stop - 1)

    def and_rows(i: int | None, start: int) -> None:
        """``and:`` lines for the events from ``start`` on (pytester's style)."""
        shown = min(n, start + _MAX_AND_LINES)
        for pos in range(start, shown):
            add(and_row(i, pos), pos, pos)
        if shown < n:
            add(
                lambda: _Row(
                    "and:", "", f"... {n - shown} more, up to {text(n - 1, False)}"
                ),
                shown,
                n - 1,
            )

    def and_row(i: int | None, pos: int) -> Callable[[], _Row]:
        return lambda: _Row(
            "and:", "", text(pos, True), [] if i is None else notes(i, pos)
        )

    def nomatch(expected: str, pos: int, i: int | None = None) -> None:
        """The row of the divergence: ``expected`` against the event at ``pos`` (why
        ``pattern[i]`` does not match it, if given), or the end of the recording."""

        def row() -> _Row:
            if pos >= n:
                return _Row("nomatch:", expected, "(end of the recording)")
            why = [] if i is None else notes(i, pos)
            return _Row("nomatch:", expected, text(pos, True), why)

        add(row, pos, pos if pos < n else pos - 1)

    def diverge(i: int, pos: int) -> None:
        """Item ``pattern[i]`` did not match the event at ``pos`` (or there is none)."""
        out.remains = list(pattern[i:])
        expected = _item_text(pattern[i])
        if pos >= n:
            nomatch(expected, n)
            out.summary = f"the recording ended after {n} hooks"
            after = f" after {text(n - 1, False)}" if n else ""
            out.diverged = (
                f"diverged at the end of the recording: expected {expected}{after}"
            )
            out.focus = n - 1 if n else None
            return
        nomatch(expected, pos, i)
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
        return _items_text([pattern[i] for i in segment])

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
        nomatch("(empty pattern)", 0)
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
                nomatch("(end of the pattern)", p)
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
                nomatch(expected, n)
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
            if item not in ALL_HOOK_NAMES:
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
    pattern names that hook, so patterns do not spell out every request header. Our
    end hooks (``body_closed``, ``request_done``, ``conn_closed``) are compared only
    when the pattern names one: then the requests' `RequestRecord.ends` are merged
    with the recorded hooks in time order.

    Example::

        first, second = httptrace_recorder.requests
        assert_hook_sequence(first, [
            "get_conn", "dns_start", "dns_done", ..., hook("got_conn", reused=False),
            "wrote_headers", "wrote_request", "got_first_response_byte", ...,
        ])
        assert_hook_sequence(second, ["get_conn", hook("got_conn", reused=True), ...])

    On failure the message is a transcript in the style of pytester's
    ``fnmatch_lines`` (what matched, where it diverged, what remains unmatched),
    followed by a timeline of the recorded hooks, both windowed around where it
    diverged when they are long. A passing assertion builds no message. An unknown
    hook name raises `ValueError`, an item that is not a pattern item `TypeError`.
    """
    __tracebackhide__ = True
    pattern = _check_pattern(expected)
    subject = _subject(source, "assert_hook_sequence")
    named = _names(pattern)
    if named & _END_HOOKS:
        subject = _with_ends(subject)
    skip = OPT_IN_HOOKS - named
    compared = [e for e in subject.events if e.hook not in skip]
    # Match without a transcript first: a passing assertion describes no event.
    if _match(pattern, compared, log=False).ok:
        return

    def describe(pos: int, full: bool) -> str:
        event = compared[pos]
        if full:
            return f"[{pos}] {_event_text(event, with_request=subject.multi)}"
        who = f"#{event.request.id} " if subject.multi and event.request else ""
        return f"[{pos}] {who}{event.hook}"

    outcome = _match(pattern, compared, describe)
    if outcome.ok:  # the first look failed: a verdict that changes is no pass
        _fail(
            f"hooks of {subject.label}: the pattern failed to match, then matched on "
            "a second look at the same events: a hook() matcher answered differently "
            "for the same value. Matchers must be pure functions of the value."
        )
    lines = [f"hooks of {subject.label} do not match the pattern ({outcome.summary}):"]
    lines += _render_rows(outcome.rows.shown())
    lines.append(outcome.diverged)
    if outcome.remains:
        lines.append(f"remains unmatched: {_items_text(outcome.remains)}")
    if outcome.missing is not None:
        lines += _ran_otherwise(outcome.missing, compared, subject.multi)
        lines += _never_ran(outcome.missing, subject)
    lines += [f"hint: {h}" for h in outcome.hints]
    left_out = len(subject.events) - len(compared)
    if left_out:
        calls = "call" if left_out == 1 else "calls"
        lines.append(
            f"(not compared: {left_out} wrote_header_field {calls}; a pattern that "
            "names wrote_header_field compares them)"
        )
    positions = {e: pos for pos, e in enumerate(compared)}
    focus = compared[outcome.focus] if outcome.focus is not None and compared else None
    lines.append("")
    lines += _timeline(subject.events, positions=positions, focus=focus)
    _fail("\n".join(lines))


def _with_ends(subject: _Subject) -> _Subject:
    """``subject`` with the end hooks of its requests merged in, in time order (those
    already among its events, given as a list, are not added twice)."""
    requests: dict[int, RequestRecord] = {}
    have: set[tuple[str, int]] = set()
    for e in subject.events:
        if e.request is not None:
            requests.setdefault(id(e.request), e.request)
            if e.hook in _END_HOOKS:
                have.add((e.hook, id(e.request)))
    ends = [e for r in requests.values() for e in r.ends if (e.hook, id(r)) not in have]
    if not ends:
        return subject
    events = sorted([*subject.events, *ends], key=lambda e: e.time)
    return _Subject(subject.label, events, subject.multi)


def _ran_otherwise(
    item: HookMatcher | str, events: Sequence[Event], multi: bool
) -> list[str]:
    """For a `hook()` matcher that matched no call: the hook did run, with other
    arguments (the last such call, and why it is not a match), so that "never ran"
    is not all the message says."""
    if not isinstance(item, HookMatcher):
        return []
    calls = [i for i, e in enumerate(events) if e.hook == item.name]
    if not calls:
        return []
    last = calls[-1]
    more = f" (the last of {len(calls)} calls)" if len(calls) > 1 else ""
    lines = [
        f"{item.name} ran, not as {item!r}: "
        f"[{last}] {_event_text(events[last], with_request=multi)}{more}"
    ]
    lines += [f"  {problem}" for problem in item.explain(events[last])]
    return lines


def _never_ran(item: HookMatcher | str, subject: _Subject) -> list[str]:
    """For a hook that never ran: what happened instead (to the response and its
    connection), and why the hook may be absent."""
    name = item if isinstance(item, str) else item.name
    if subject.multi:
        return []
    requests = {id(e.request): e.request for e in subject.events if e.request}
    if len(requests) != 1:
        return []
    [request] = requests.values()
    ran = any(e.hook == name for e in [*request.events, *request.ends])
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
    if request.outcome == "closed_early":
        parts.append("it ended closed early (its body not read to the end)")
    if conn is not None and conn.protocol == "HTTP/2":
        parts.append(
            f"its connection {_conn_label(request)} is HTTP/2, which is never put "
            "back idle"
        )
    elif conn is not None and conn.closed_at is not None:
        # How it closed, where its source said why (our conn_closed).
        how = CLOSE_TEXT.get(conn.close_reason or "", "closed")
        parts.append(
            f"its connection {_conn_label(request)} was {how} at "
            f"{_ms(conn.closed_at, t0)}"
        )
    if not parts:
        return f"the recording of request #{request.id} ends with {request.hooks[-1]}"
    return "; ".join(parts)


def _render_rows(rows: Sequence[_Row | _Gap]) -> list[str]:
    width = min(
        max((len(r.expected) for r in rows if isinstance(r, _Row)), default=0), 44
    )
    lines = []
    indent = " " * (2 + 8 + 1 + width + 2 + 4)
    for r in rows:
        if isinstance(r, _Gap):
            plural = "row" if r.rows == 1 else "rows"
            hooks = "" if r.first is None else f": hooks [{r.first}] to [{r.last}]"
            lines.append(f"  ... ({r.rows} more {plural}{hooks})")
            continue
        lines.append(f"  {r.label:>8} {r.expected:<{width}}  {r.recorded}".rstrip())
        lines += [indent + note for note in r.notes]
    return lines


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
