"""The timeline every failure message ends with, and `render_timeline`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from .._ends import CLOSE_TEXT, OUTCOME_TEXT, closed_connection
from ..recorder import Event, Recorder, RequestRecord
from ._format import _clip, _conn_label, _event_text, _made_at, _ms, _req, _short
from ._leaks import _is_leak
from ._subject import _merged_events

#: Past this many lines, a timeline in a failure message shows the part around the
#: point of failure (and its first and last lines).
_MAX_TIMELINE = 40


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


def _starts(
    events: Sequence[Event], positions: Mapping[Event, int] | None, collapse: bool
) -> list[int]:
    """Where each line of a timeline starts (an index into ``events``): a line per
    event, but a run of a request's header fields (those not compared in a pattern
    match) folds into one line. Only the lines shown become `_Entry` objects: a long
    timeline costs a list of ints."""
    starts: list[int] = []
    folding = False  # whether the last line is a foldable header field
    previous: RequestRecord | None = None
    for i, e in enumerate(events):
        foldable = (
            collapse
            and e.hook == "wrote_header_field"
            and (positions is None or e not in positions)
        )
        if not (folding and foldable and e.request is previous):
            starts.append(i)
        folding = foldable
        previous = e.request
    return starts


def _entry(
    events: Sequence[Event],
    starts: Sequence[int],
    i: int,
    positions: Mapping[Event, int] | None,
) -> _Entry:
    start = starts[i]
    stop = starts[i + 1] if i + 1 < len(starts) else len(events)
    position = None if positions is None else positions.get(events[start])
    return _Entry(start, stop, position)


def _window(
    events: Sequence[Event],
    starts: Sequence[int],
    focus: Event | None,
    max_entries: int | None,
) -> list[int | None]:
    """Indices of the lines to show; None where lines are left out. A long
    timeline keeps its first and last 3 lines and the lines around ``focus``."""
    count = len(starts)
    if max_entries is None or count <= max_entries:
        return list(range(count))
    center = 0
    if focus is not None:
        center = next(
            (
                i
                for i, start in enumerate(starts)
                if events[start] is focus or events[start].time > focus.time
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
    starts = _starts(events, positions, collapse)
    shown = _window(events, starts, focus, max_entries)
    t0 = min(e.time for e in events)

    header = ["ms", "req", "conn", "thread", "hook"]
    rows: list[list[str] | None] = []
    for i in shown:
        if i is None:
            rows.append(None)
            continue
        entry = _entry(events, starts, i, positions)
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
        id(events[starts[i]].request) for i in shown if i is not None
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
    attempts = request.attempts
    if len(attempts) > 1:  # one logical request: its hops or retried attempts
        ids = ", ".join(f"#{r.id}" for r in attempts)
        parts.append(f"attempt {request.attempt} of {len(attempts)}: {ids}")
    if request.answered_by is not None:
        parts.append(f"answered by {request.answered_by}: mocked, no connection")
    if request.status is not None:
        parts.append(f"status {request.status}")
    if request.error is not None:
        parts.append(f"error {_short(request.error, 60)}")
    if request.returned_at is not None:
        parts.append(f"returned at {_ms(request.returned_at, t0)}")
    outcome = request.outcome
    if outcome is not None and outcome != "complete":
        at = request.closed_at if request.closed_at is not None else request.done_at
        parts.append(f"ended: {OUTCOME_TEXT[outcome]} at {_ms(at, t0)}")
    elif request.closed_at is not None:
        parts.append(f"closed at {_ms(request.closed_at, t0)}")
    elif _is_leak(request):
        parts.append("never closed")
    # Why its connection closed, after serving it last; not when it merely closed
    # with its client (the usual end, which would be on every line).
    conn = closed_connection(request)
    if conn is not None and conn.close_reason not in (None, "client_closed"):
        assert conn.close_reason is not None
        said = CLOSE_TEXT[conn.close_reason]
        parts.append(f"connection c{conn.id} {said} at {_ms(conn.closed_at, t0)}")
    if request.origin:
        parts.append(f"made at {_made_at(request)}")
    return ", ".join(parts) if parts else "no outcome recorded"
