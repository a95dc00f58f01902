"""Reports of recorded lifecycles: a Chrome trace-event JSON file and an HTML page.

Input: a list of ``(name, requests)`` pairs, one per test (``name`` is its node id;
``requests`` are `RequestRecord` objects or their plain form, `RequestData`). Output:

- `chrome_trace`: the `Trace Event Format`_ that Perfetto (https://ui.perfetto.dev)
  and ``chrome://tracing`` open. One *process* per test, one *thread* (track) per
  connection; on it a span per request (``GET /path → 200``) with the phases nested
  inside (``dns``, ``connect``, ``tls``, ``send``, ``wait``, ``transfer``; see
  `waterfall`), and an instant event for every other hook call. Arguments are in each
  event's ``args``. HTTP/2 streams that overlap on one connection cannot nest on one
  track, so each extra concurrent stream gets a track of its own next to its
  connection's ("connection #2 (concurrent stream 2)").
- `html_report`: one self-contained page (inline CSS and a few lines of JS, nothing
  fetched from the network) with the same picture: per test, one row per connection
  with its requests drawn as phase bars on the test's time axis, and under it each
  request's hook calls with their arguments.

`write_report` writes both; `report_paths` says where (``PATH.json`` and
``PATH.html``). This is what ``pytest --httptrace-report=PATH`` calls at the end of
the run.

.. _Trace Event Format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
"""

from __future__ import annotations

import html
import itertools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ._argtext import format_args
from ._ends import CLOSE_TEXT, OUTCOME_TEXT
from ._version import __version__
from .waterfall import (
    PHASE_TITLES,
    PHASES,
    ConnectionData,
    RequestData,
    format_ms,
    is_leaked,
    request_bounds,
    request_data,
    request_spans,
)

if TYPE_CHECKING:
    from .recorder import RequestRecord

__all__ = ["chrome_trace", "html_report", "report_paths", "write_report"]

RequestLike = Union["RequestRecord", RequestData]
#: One test: ``(name, requests)``, or ``(name, requests, outcome)`` where outcome is
#: pytest's word for it (``"passed"``, ``"failed"``, ``"error"``, ``"skipped"``, ...).
TestRequests = (
    tuple[str, Sequence[RequestLike]] | tuple[str, Sequence[RequestLike], str | None]
)
_Test = tuple[str, list[RequestData], str | None]

#: Outcomes drawn as a failure.
_FAILED = frozenset({"failed", "error"})

#: Hooks drawn as spans (start and done together) rather than instant events.
_SPAN_HOOKS = frozenset(
    {
        "dns_start",
        "dns_done",
        "connect_start",
        "connect_done",
        "tls_handshake_start",
        "tls_handshake_done",
    }
)

_COLORS = {
    "dns": "#1a9e8f",
    "connect": "#f0a020",
    "tls": "#9b4dca",
    "send": "#a0b83a",
    "wait": "#3f9b4b",
    "transfer": "#2f7fd8",
}


def report_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The two files of a report at ``path``: ``(PATH.json, PATH.html)``.

    A ``.json`` or ``.html`` suffix on ``path`` is dropped first, so ``trace``,
    ``trace.json`` and ``trace.html`` all mean ``trace.json`` + ``trace.html``.
    """
    base = Path(path)
    if base.suffix.lower() in (".json", ".html"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".html")


def write_report(
    path: str | os.PathLike[str], tests: Iterable[TestRequests]
) -> tuple[Path, Path]:
    """Write the Chrome trace and the HTML page for ``tests``; return their paths.

    The directory is created if it does not exist.
    """
    normalized = _normalize(tests)
    json_path, html_path = report_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(chrome_trace(normalized), f, allow_nan=False)
        f.write("\n")
    html_path.write_text(html_report(normalized), encoding="utf-8")
    return json_path, html_path


def _normalize(tests: Iterable[TestRequests]) -> list[_Test]:
    result: list[_Test] = []
    for test in tests:
        name, requests = test[0], test[1]
        outcome = test[2] if len(test) > 2 else None
        data = [r if isinstance(r, dict) else request_data(r) for r in requests]
        result.append((str(name), data, None if outcome is None else str(outcome)))
    return result


def _connection(request: RequestData) -> ConnectionData | None:
    """The connection that served ``request``: none if every dial it made failed
    (a refused connect is not a connection, whatever the record says)."""
    dials = [e for e in request["events"] if e["hook"] == "connect_done"]
    if dials and all(e["args"].get("err") is not None for e in dials):
        return None
    return request["connection"]


# -- tracks: one per connection (plus one per extra concurrent HTTP/2 stream) --------


@dataclass
class _Track:
    tid: int
    name: str
    connection: int | None
    lane: int
    requests: list[RequestData]


def _tracks(requests: Sequence[RequestData]) -> list[_Track]:
    """Group requests by connection; overlapping ones go to extra lanes."""
    by_conn: dict[int | None, list[RequestData]] = {}
    for r in sorted(requests, key=lambda r: request_bounds(r)[0]):
        conn = _connection(r)
        by_conn.setdefault(None if conn is None else conn["id"], []).append(r)
    tracks: list[_Track] = []
    for conn_id, reqs in by_conn.items():
        lanes: list[tuple[float, list[RequestData]]] = []  # (busy until, requests)
        for r in reqs:
            start, end = request_bounds(r)
            for i, (busy_until, members) in enumerate(lanes):
                if busy_until <= start:
                    members.append(r)
                    lanes[i] = (end, members)
                    break
            else:
                lanes.append((end, [r]))
        for lane, (_, members) in enumerate(lanes):
            name = _track_name(members[0], lane)
            tracks.append(_Track(0, name, conn_id, lane, members))
    tracks.sort(key=lambda t: (t.connection is None, t.connection or 0, t.lane))
    for tid, track in enumerate(tracks, 1):
        track.tid = tid
    return tracks


def _track_name(request: RequestData, lane: int) -> str:
    conn = _connection(request)
    if conn is None:
        return "no connection"
    name = f"connection #{conn['id']}"
    if lane:
        return f"{name} (concurrent stream {lane + 1})"
    details = [d for d in (conn["protocol"], conn["peer_addr"]) if d]
    tls = conn["tls"]
    if tls and tls.get("version"):
        details.append(str(tls["version"]))
    return f"{name} · {' · '.join(details)}" if details else name


def _request_label(request: RequestData) -> str:
    target = request["url"]
    _, sep, rest = target.partition("://")
    if sep:
        _, slash, path = rest.partition("/")
        target = slash + path
    outcome = (
        str(request["status"])
        if request["status"] is not None
        else ("failed" if request["error"] is not None else "…")
    )
    leaked = " · never closed" if is_leaked(request) else ""
    return f"{request['method']} {target} → {outcome}{leaked}"


# -- Chrome trace events -------------------------------------------------------------


def chrome_trace(tests: Iterable[TestRequests]) -> dict[str, Any]:
    """The Chrome trace-event document (JSON object format) for ``tests``.

    Tests without requests are left out. Times (``ts``, ``dur``) are microseconds
    since the first recorded request started.
    """
    normalized = [t for t in _normalize(tests) if t[1]]
    starts = [request_bounds(r)[0] for _, rs, _ in normalized for r in rs]
    origin = min(starts, default=0.0)

    def us(t: float) -> float:
        return round((t - origin) * 1e6, 3)

    events: list[dict[str, Any]] = []
    for pid, (name, requests, outcome) in enumerate(normalized, 1):
        events.append(_meta(pid, None, "process_name", name=name))
        events.append(_meta(pid, None, "process_sort_index", sort_index=pid))
        if outcome is not None:
            events.append(_meta(pid, None, "process_labels", labels=outcome))
        for track in _tracks(requests):
            tid = track.tid
            events.append(_meta(pid, tid, "thread_name", name=track.name))
            events.append(_meta(pid, tid, "thread_sort_index", sort_index=tid))
            for request in track.requests:
                start, end = request_bounds(request)
                events.append(
                    {
                        "ph": "X",
                        "pid": pid,
                        "tid": tid,
                        "ts": us(start),
                        "dur": max(0.0, us(end) - us(start)),
                        "name": _request_label(request),
                        "cat": "request",
                        "args": _request_args(request),
                    }
                )
                for span in request_spans(request):
                    events.append(
                        {
                            "ph": "X",
                            "pid": pid,
                            "tid": tid,
                            "ts": us(span.start),
                            "dur": max(0.0, us(span.end) - us(span.start)),
                            "name": span.name,
                            "cat": "phase",
                            "args": {"phase": PHASE_TITLES[span.name], **span.args},
                        }
                    )
                for event in request["events"]:
                    if event["hook"] in _SPAN_HOOKS:
                        continue
                    events.append(
                        {
                            "ph": "i",
                            "s": "t",
                            "pid": pid,
                            "tid": tid,
                            "ts": us(event["time"]),
                            "name": event["hook"],
                            "cat": "hook",
                            "args": {
                                **event["args"],
                                "request": request["id"],
                                "thread": event["thread"],
                                "task": event["task"],
                                "after_return": event["after_return"],
                            },
                        }
                    )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": f"pytest-httptrace {__version__}",
            "tests": str(len(normalized)),
        },
    }


def _meta(pid: int, tid: int | None, kind: str, **args: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"ph": "M", "pid": pid, "name": kind, "args": args}
    if tid is not None:
        event["tid"] = tid
    return event


def _request_args(request: RequestData) -> dict[str, Any]:
    conn = _connection(request)
    return {
        "request": request["id"],
        "method": request["method"],
        "url": request["url"],
        "status": request["status"],
        "error": request["error"],
        "phase": request["phase"],
        "origin": request["origin"],
        "source": request.get("source"),
        "connection": None if conn is None else conn["id"],
        "reused": request["reused"],
        "protocol": None if conn is None else conn["protocol"],
        "leaked": is_leaked(request),
    }


# -- HTML ------------------------------------------------------------------------------

_CSS = """
:root { --label: 250px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; color: #1d2330;
       background: #fafbfc; font-size: 14px; }
h1 { font-size: 20px; margin: 0 0 4px; }
.summary { color: #5a6270; margin: 0 0 10px; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; align-items: center;
          margin: 8px 0; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.legend i { display: inline-block; width: 14px; height: 10px; border-radius: 2px; }
#filter { padding: 5px 8px; width: 320px; border: 1px solid #c5cad3;
          border-radius: 4px; }
section.test { background: #fff; border: 1px solid #dde1e7; border-radius: 6px;
               margin: 14px 0; padding: 10px 14px; }
section.test h2 { font-size: 14px; font-family: ui-monospace, monospace;
                  margin: 0 0 8px; word-break: break-all; }
section.test h2 small { font-family: system-ui, sans-serif; color: #6b7380;
                        font-weight: normal; margin-left: 8px; }
.track { display: flex; border-top: 1px solid #eef0f3; min-height: 26px; }
.track:first-of-type { border-top: none; }
.track .label { width: var(--label); flex: none; padding: 3px 8px 3px 0;
                font-size: 12px; color: #39404c; overflow: hidden; }
.track .label b { color: #1d2330; display: block; }
.track .label small { display: block; white-space: nowrap; overflow: hidden;
                      text-overflow: ellipsis; color: #6b7380; font-size: 11px; }
.track .area { flex: 1; position: relative; background:
  repeating-linear-gradient(90deg, transparent 0, transparent calc(25% - 1px),
                            #eef0f3 calc(25% - 1px), #eef0f3 25%); }
.lane { position: relative; height: 34px; margin: 2px 0; overflow: hidden; }
.req { position: absolute; top: 16px; height: 16px; background: #e3e7ee;
       border-radius: 3px; min-width: 2px; overflow: hidden; }
.req.failed { background: #f6d5d2; box-shadow: inset 0 0 0 1px #b3261e; }
.req.leaked, .leak-swatch { background: repeating-linear-gradient(135deg, #f3c6c2 0,
  #f3c6c2 4px, #fff 4px, #fff 8px); box-shadow: inset 0 0 0 1px #b3261e; }
.req-label.failed, .req-label.leaked { color: #b3261e; font-weight: 600; }
.seg { position: absolute; top: 16px; height: 16px; min-width: 1px; }
.req-label { position: absolute; top: 1px; height: 14px; font-size: 11px;
             line-height: 14px; white-space: nowrap; overflow: hidden;
             text-overflow: ellipsis; color: #1d2330; padding-left: 2px;
             box-sizing: border-box; }
.tick { position: absolute; top: 14px; width: 2px; height: 20px; background: #d0342c; }
section.test.failed { border-left: 4px solid #b3261e; }
.outcome { font-family: system-ui, sans-serif; font-size: 11px; font-weight: 600;
           padding: 1px 6px; border-radius: 8px; margin-left: 8px;
           vertical-align: 1px; }
.outcome.ok { background: #e3f1e5; color: #2d6a36; }
.outcome.bad { background: #f6d5d2; color: #b3261e; }
.bad { color: #b3261e; }
.axis { display: flex; margin-left: var(--label); font-size: 11px; color: #6b7380;
        border-top: 1px solid #c5cad3; padding-top: 2px; }
.axis span { flex: 1; }
.axis span:last-child { flex: none; }
details { margin: 4px 0 0; }
details summary { cursor: pointer; font-size: 12px; color: #39404c;
                  font-family: ui-monospace, monospace; }
table.hooks { border-collapse: collapse; margin: 4px 0 8px 18px; font-size: 12px;
              font-family: ui-monospace, monospace; }
table.hooks td { padding: 1px 10px 1px 0; vertical-align: top; }
table.hooks td.t { text-align: right; color: #6b7380; }
table.hooks td.args { color: #39404c; word-break: break-all; }
table.hooks tr.late td { color: #a05a00; }
.error { color: #b3261e; }
.empty { color: #6b7380; }
"""

_JS = """
function applyFilter() {
  var q = document.getElementById('filter').value.toLowerCase();
  var failedOnly = document.getElementById('failed-only').checked;
  document.querySelectorAll('section.test').forEach(function (s) {
    var shown = s.dataset.name.toLowerCase().indexOf(q) >= 0 &&
      (!failedOnly || s.classList.contains('failed'));
    s.style.display = shown ? '' : 'none';
  });
}
document.getElementById('filter').addEventListener('input', applyFilter);
document.getElementById('failed-only').addEventListener('change', applyFilter);
"""


def html_report(
    tests: Iterable[TestRequests], *, title: str = "httptrace report"
) -> str:
    """A self-contained HTML page with a waterfall per test (see the module doc)."""
    normalized = _normalize(tests)
    with_requests = [t for t in normalized if t[1]]
    empty = [(n, o) for n, rs, o in normalized if not rs]
    n_requests = sum(len(rs) for _, rs, _ in with_requests)
    failed = [n for n, _, o in normalized if o in _FAILED]
    leaked = sum(is_leaked(r) for _, rs, _ in with_requests for r in rs)
    e = html.escape
    outcomes = ""
    if failed:
        outcomes += f' <b class="bad">{_count(len(failed), "test")} failed.</b>'
    if leaked:
        outcomes += (
            f' <b class="bad">{_count(leaked, "response")} never closed (leaked).</b>'
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="summary">{_count(len(with_requests), "test")} made '
        f"{_count(n_requests, 'request')}; generated by pytest-httptrace "
        f"{e(__version__)}.{outcomes} One row per connection; hover a bar for its "
        "timing, open a request for its hook calls.</p>",
        '<div class="legend">',
        *(
            f'<span><i style="background:{_COLORS[p]}"></i>{e(p)}: '
            f"{e(PHASE_TITLES[p])}</span>"
            for p in PHASES
        ),
        '<span><i style="background:#e3e7ee"></i>in flight, in no phase (e.g. '
        "waiting for a connection)</span>",
        '<span><i style="background:#d0342c;width:3px"></i>1xx response</span>',
        '<span><i class="leak-swatch"></i>never closed (leaked): held to the end'
        "</span>",
        '<input id="filter" type="search" placeholder="filter tests by name">',
        '<label><input id="failed-only" type="checkbox"> failed tests only</label>',
        "</div>",
    ]
    for name, requests, outcome in with_requests:
        parts.append(_html_test(name, requests, outcome))
    if empty:
        items = "".join(f"<li>{e(n)}{_badge(o)}</li>" for n, o in empty)
        parts.append(
            f'<details class="empty"><summary>{_count(len(empty), "test")} made no '
            f"HTTP request</summary><ul>{items}</ul></details>"
        )
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _badge(outcome: str | None) -> str:
    if outcome is None:
        return ""
    kind = "bad" if outcome in _FAILED else "ok"
    return f' <span class="outcome {kind}">{html.escape(outcome)}</span>'


def _html_test(name: str, requests: list[RequestData], outcome: str | None) -> str:
    e = html.escape
    bounds = [request_bounds(r) for r in requests]
    t0 = min(b[0] for b in bounds)
    t1 = max(b[1] for b in bounds)
    total = max(t1 - t0, 1e-6)

    def pct(t: float) -> str:
        return f"{max(0.0, min(100.0, (t - t0) / total * 100)):.3f}%"

    def width(a: float, b: float) -> str:
        return f"{max(0.0, min(100.0, (b - a) / total * 100)):.3f}%"

    tracks = _tracks(requests)
    connections = {t.connection for t in tracks if t.connection is not None}
    failed = " failed" if outcome in _FAILED else ""
    out = [
        f'<section class="test{failed}" data-name="{e(name)}" '
        f'data-outcome="{e(outcome or "")}">',
        f"<h2>{e(name)}{_badge(outcome)}<small>{_count(len(requests), 'request')} · "
        f"{_count(len(connections), 'connection')} · {e(format_ms(total))}"
        "</small></h2>",
    ]
    for _, group in itertools.groupby(tracks, key=lambda t: t.connection):
        lanes = list(group)
        bits = lanes[0].name.split(" · ", 1)
        label = f"<b>{e(bits[0])}</b>"
        if len(bits) > 1:
            label += f"<small>{e(bits[1])}</small>"
        out.append(
            f'<div class="track"><div class="label" title="{e(lanes[0].name)}">'
            f'{label}</div><div class="area">'
        )
        for lane in lanes:
            out.append('<div class="lane">')
            starts = [request_bounds(r)[0] for r in lane.requests]
            for i, r in enumerate(lane.requests):
                # A label may use the room up to the next request of its lane.
                room = (starts[i + 1] if i + 1 < len(starts) else t1) - starts[i]
                out.append(_html_request_bars(r, pct, width, room / total, t1))
            out.append("</div>")
        out.append("</div></div>")
    ticks = "".join(f"<span>{e(format_ms(total * i / 4))}</span>" for i in range(5))
    out.append(f'<div class="axis">{ticks}</div>')
    for r in requests:
        out.append(_html_request_details(r, t0))
    out.append("</section>")
    return "\n".join(out)


def _html_request_bars(
    r: RequestData,
    pct: Callable[[float], str],
    width: Callable[[float, float], str],
    room: float,
    t_end: float,
) -> str:
    """One request on its lane: the label on a row of its own (never under a bar),
    then the bar of the whole request and its phases. ``room``: the fraction of the
    axis its label may use, up to the next request's (cut short with an ellipsis; the
    tooltip has it whole); ``t_end``: the end of the axis (a leaked response holds its
    connection to there)."""
    e = html.escape
    start, end = request_bounds(r)
    leaked = is_leaked(r)
    tip = f"#{r['id']} {_request_label(r)} · {format_ms(end - start)}"
    if r["error"] is not None:
        tip += f" · {r['error']}"
    if leaked:
        tip += " · the response was never closed: its connection stays taken"
    classes = " failed" if r["error"] is not None else ""
    classes += " leaked" if leaked else ""
    bar_end = t_end if leaked else end
    label_style = f"left:{pct(start)};max-width:{room * 100:.3f}%"
    out = [
        f'<span class="req-label{classes}" style="{label_style}" title="{e(tip)}">'
        f"{e(_request_label(r))}</span>",
        f'<div class="req{classes}" style="left:{pct(start)};'
        f'width:{width(start, bar_end)}" title="{e(tip)}"></div>',
    ]
    for span in request_spans(r):
        span_tip = f"{span.name}: {format_ms(span.duration)} ({tip})"
        out.append(
            f'<div class="seg" style="left:{pct(span.start)};'
            f"width:{width(span.start, span.end)};"
            f'background:{_COLORS[span.name]}" title="{e(span_tip)}"></div>'
        )
    for ev in r["events"]:
        if ev["hook"] == "got_1xx_response":
            code = ev["args"].get("code")
            out.append(
                f'<div class="tick" style="left:{pct(ev["time"])}" '
                f'title="{e(f"{code} interim response ({tip})")}"></div>'
            )
    return "".join(out)


def _html_request_details(request: RequestData, t0: float) -> str:
    e = html.escape
    start, end = request_bounds(request)
    conn = _connection(request)
    where = ""
    if conn is not None:
        state = "reused" if request["reused"] else "new"
        reason = conn.get("close_reason")
        if reason:
            state += f", {CLOSE_TEXT.get(reason, reason)}"
        where = f" · connection #{conn['id']} ({state})"
    elif request["connection"] is not None:
        where = " · no connection (every dial failed)"
    if is_leaked(request):
        where += " · never closed (leaked)"
    attempt = request.get("attempt")
    if attempt:  # one logical request: its redirect hops or retried attempts
        where += f" · attempt {attempt[0]} of {attempt[1]}"
    outcome = request.get("outcome")
    if outcome:
        where += f" · ended: {OUTCOME_TEXT.get(outcome, outcome)}"
    phases = ", ".join(
        f"{s.name} {format_ms(s.duration)}" for s in request_spans(request)
    )
    summary = (
        f"#{request['id']} {request['method']} {request['url']} → "
        f"{request['status'] if request['status'] is not None else 'no response'}"
        f"{where} · {format_ms(end - start)}"
    )
    rows = []
    for ev in request["events"]:
        args = format_args(ev["hook"], ev["args"], limit=400)
        who = ev["thread"] + (f"/{ev['task']}" if ev["task"] else "")
        late = ' class="late"' if ev["after_return"] else ""
        note = " (after the call returned)" if ev["after_return"] else ""
        rows.append(
            f'<tr{late}><td class="t">{(ev["time"] - t0) * 1000:.3f} ms</td>'
            f'<td>{e(ev["hook"])}</td><td class="args">{e(args)}{e(note)}</td>'
            f"<td>{e(who)}</td></tr>"
        )
    error = (
        f'<div class="error">error: {e(str(request["error"]))}</div>'
        if request["error"] is not None
        else ""
    )
    origin = f"<div>made at {e(request['origin'])}</div>" if request["origin"] else ""
    if request.get("source"):
        origin += f"<div>client library: {e(str(request['source']))}</div>"
    if request.get("answered_by"):
        mocked = f"answered by {request['answered_by']}: mocked, no connection"
        origin += f'<div class="error">{e(mocked)}</div>'
    return (
        f"<details><summary>{e(summary)}</summary>"
        f'<div style="margin-left:18px;font-size:12px">phases: {e(phases or "none")}'
        f"{origin}{error}</div>"
        f'<table class="hooks">{"".join(rows)}</table></details>'
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
