"""A request's phases (DNS, connect, TLS, send, wait, transfer) and a text waterfall.

Three steps, each usable alone:

1. `request_data` turns a `RequestRecord` into plain data (`RequestData`: dicts, lists,
   strings, numbers; hook arguments stringified safely). That form is what the CLI's
   ``--json`` prints, what pytest-xdist workers send to the controller for the report,
   and what `report` renders.
2. `request_spans` derives the phases of one request from its hook calls, the way
   httpstat or a browser's network panel shows them:

   ============  =====================================  ==============================
   phase         from                                   to
   ============  =====================================  ==============================
   ``dns``       ``dns_start``                          ``dns_done``
   ``connect``   ``connect_start``                      ``connect_done`` (one span per
                                                        address tried)
   ``tls``       ``tls_handshake_start``                ``tls_handshake_done``
   ``send``      ``got_conn``                           ``wrote_request``
   ``wait``      ``wrote_request``                      ``got_first_response_byte``
   ``transfer``  ``got_first_response_byte``            the response was closed (or
                                                        the call returned)
   ============  =====================================  ==============================

   A request on a reused connection has no ``dns``, ``connect`` or ``tls`` span.
3. `render_waterfall` draws requests on one time axis in the terminal, each followed
   by its hook calls and their arguments.

Example::

    with Recorder.start() as rec:
        with httpx.Client() as client:
            client.get(url)
    print(render_waterfall([request_data(r) for r in rec.all_requests]))
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from ._argtext import format_args
from ._ends import CLOSE_TEXT, OUTCOME_TEXT
from ._phases import in_flight, is_leak, phases

if TYPE_CHECKING:
    from .recorder import RequestRecord

__all__ = [
    "PHASES",
    "PHASE_TITLES",
    "ConnectionData",
    "EventData",
    "RequestData",
    "Span",
    "format_ms",
    "is_leaked",
    "jsonable",
    "render_waterfall",
    "request_bounds",
    "request_data",
    "request_spans",
    "shift_times",
]

#: The phases of a request, in the order they happen.
PHASES = ("dns", "connect", "tls", "send", "wait", "transfer")

#: What each phase means, for legends and docs.
PHASE_TITLES = {
    "dns": "DNS lookup",
    "connect": "TCP connect",
    "tls": "TLS handshake",
    "send": "request written",
    "wait": "waiting for the first byte",
    "transfer": "response transfer",
}

_MAX_REPR = 300


# -- plain data ----------------------------------------------------------------------


class EventData(TypedDict):
    """One hook call as plain data. ``time`` is in seconds (see `shift_times`)."""

    hook: str
    time: float
    args: dict[str, Any]
    thread: str
    task: str | None
    after_return: bool


class ConnectionData(TypedDict):
    """One connection as plain data; ``id`` is the recorder's connection number."""

    id: int
    protocol: str | None
    local_addr: str | None
    peer_addr: str | None
    tls: dict[str, Any] | None
    opened_at: float | None
    closed_at: float | None
    close_reason: str | None
    """Why it closed (a key of `CONN_CLOSE_REASONS`), when its source could tell."""


class RequestData(TypedDict):
    """One request attempt as plain data (the form of ``--json`` and the report)."""

    id: int
    method: str
    url: str
    phase: str
    origin: str | None
    source: str | None
    answered_by: str | None
    attempt: list[int] | None
    """``[this attempt, attempts]`` of its logical request, when it had several."""
    status: int | None
    error: str | None
    outcome: str | None
    """How it ended (``complete``, ``closed_early``, ``failed``); None: not ended."""
    started_at: float | None
    returned_at: float | None
    closed_at: float | None
    reused: bool | None
    connection: ConnectionData | None
    events: list[EventData]


def jsonable(value: Any, *, _depth: int = 0) -> Any:
    """``value`` as JSON-compatible data that is safe to print, whatever it is.

    Exceptions become ``"Type: message"``, bytes their length, header collections a list
    of ``[name, value]`` pairs, dataclasses a dict (a DER certificate becomes its
    SHA-256 fingerprint), anything else its (shortened) ``repr`` — which never raises.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth > 6:
        return _safe_repr(value)
    if isinstance(value, BaseException):
        message = _safe_str(value)
        return f"{type(value).__name__}: {message}" if message else type(value).__name__
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, tuple)):
        return [jsonable(v, _depth=_depth + 1) for v in value]
    multi_items = getattr(value, "multi_items", None)  # httpx.Headers, without httpx
    if callable(multi_items):
        try:
            return [[str(k), str(v)] for k, v in multi_items()]
        except Exception:
            return _safe_repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth=_depth + 1) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        result: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name, None)
            if f.name == "peer_certificate" and isinstance(item, bytes):
                result["peer_certificate_sha256"] = hashlib.sha256(item).hexdigest()
            else:
                result[f.name] = jsonable(item, _depth=_depth + 1)
        return result
    return _safe_repr(value)


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object (repr failed)>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 1] + "…"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)


def request_data(request: RequestRecord) -> RequestData:
    """The plain-data form of one recorded request (times in monotonic seconds)."""
    conn = request.connection
    connection: ConnectionData | None = None
    if conn is not None:
        connection = {
            "id": conn.id,
            "protocol": conn.protocol,
            "local_addr": conn.local_addr,
            "peer_addr": conn.peer_addr,
            "tls": jsonable(conn.tls) if conn.tls is not None else None,
            "opened_at": conn.opened_at,
            "closed_at": conn.closed_at,
            "close_reason": conn.close_reason,
        }
    events: list[EventData] = []
    for event in list(request.events):
        args = {k: jsonable(v) for k, v in event.args.items()}
        if event.hook == "got_conn" and conn is not None:
            args["conn"] = f"#{conn.id}"  # the connection object itself, by number
        events.append(
            {
                "hook": event.hook,
                "time": event.time,
                "args": args,
                "thread": event.thread,
                "task": event.task,
                "after_return": event.after_return,
            }
        )
    got_conn = request.got_conn
    error = request.error
    return {
        "id": request.id,
        "method": request.method,
        "url": request.url,
        "phase": request.phase,
        "origin": request.made_at,
        "source": None if request.source is None else str(request.source),
        "answered_by": request.answered_by,
        "attempt": (
            [request.attempt, len(request.attempts)]
            if len(request.attempts) > 1
            else None
        ),
        "status": request.status,
        "error": None if error is None else jsonable(error),
        "outcome": request.outcome,
        "started_at": request.started_at,
        "returned_at": request.returned_at,
        "closed_at": request.closed_at,
        "reused": None if got_conn is None else got_conn.reused,
        "connection": connection,
        "events": events,
    }


def is_leaked(request: RequestData) -> bool:
    """Whether the request took a connection and its response was never closed (a
    call that raised before it had a response left nothing to close); the one
    definition of `is_leak`."""
    return is_leak(request)


def shift_times(request: RequestData, origin: float) -> RequestData:
    """A copy of ``request`` with every time made relative to ``origin`` (seconds)."""

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - origin, 9)

    conn = request["connection"]
    shifted: RequestData = {
        **request,
        "started_at": rel(request["started_at"]),
        "returned_at": rel(request["returned_at"]),
        "closed_at": rel(request["closed_at"]),
        "events": [
            {**e, "time": round(e["time"] - origin, 9)} for e in request["events"]
        ],
        "connection": None
        if conn is None
        else {
            **conn,
            "opened_at": rel(conn["opened_at"]),
            "closed_at": rel(conn["closed_at"]),
        },
    }
    return shifted


# -- phases ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Span:
    """One phase of a request: ``name`` is one of `PHASES`; times in seconds."""

    name: str
    start: float
    end: float
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


def request_bounds(request: RequestData) -> tuple[float, float]:
    """When the request started and ended: from its start (just before ``get_conn``)
    to the last of its hook calls, its return and its response's close
    (`in_flight`, the definition the assertions use too)."""
    return in_flight(request)


#: The waterfall's row for a request's wait for a connection of the pool (its
#: ``blocked`` phase), drawn above the others when it lasted `POOL_WAIT_SHOWN`
#: seconds or more (`request_spans` leaves it out: it is the gap before
#: ``dns``/``connect`` or ``send``).
POOL_WAIT = "pool wait"
POOL_WAIT_SHOWN = 0.001

#: The waterfall's name for each of `PHASE_NAMES` it draws.
_SPAN_NAMES = {"receive": "transfer"}


def request_spans(request: RequestData) -> list[Span]:
    """The phases of ``request``, in time order; see the module docstring.

    These are `phases` under the waterfall's names (``receive`` is
    ``transfer``; ``blocked`` is left out). Phases that did not happen are absent (no
    ``dns`` for an IP address or a reused connection; no ``wait`` or ``transfer``
    after a failed connect). A phase cut short by an error ends when the request
    ended, with ``args["incomplete"] = True``.
    """
    spans = []
    for phase in phases(request):
        if phase.name == "blocked":
            continue
        args = dict(phase.args)
        if phase.incomplete:
            args["incomplete"] = True
        name = _SPAN_NAMES.get(phase.name, phase.name)
        spans.append(Span(name=name, start=phase.start, end=phase.end, args=args))
    return spans


# -- the terminal waterfall ------------------------------------------------------------

_ANSI = {
    "pool wait": "31",  # red: a saturated pool
    "dns": "36",  # cyan
    "connect": "33",  # yellow
    "tls": "35",  # magenta
    "send": "37",  # white
    "wait": "32",  # green
    "transfer": "34",  # blue
    "dim": "2",
    "bold": "1",
    "red": "31",
}


@dataclass(frozen=True)
class _Glyphs:
    bar: str
    edge: str
    arrow: str


_UNICODE = _Glyphs(bar="█", edge="│", arrow="→")
_ASCII = _Glyphs(bar="#", edge="|", arrow="->")


def render_waterfall(
    requests: Sequence[RequestData],
    *,
    width: int = 80,
    color: bool = False,
    unicode: bool = True,
    headers: bool = True,
) -> str:
    """Draw ``requests`` on one shared time axis, each followed by its hook calls.

    ``width`` is the line width to fill; ``color`` adds ANSI colours; ``unicode=False``
    draws with ASCII only; ``headers=False`` leaves out the ``wrote_header_field``
    calls from the hook lists.
    """
    if not requests:
        return "(no request was recorded)\n"
    glyphs = _UNICODE if unicode else _ASCII
    several = len({r.get("source") for r in requests}) > 1
    bounds = [request_bounds(r) for r in requests]
    origin = min(b[0] for b in bounds)
    total = max(max(b[1] for b in bounds) - origin, 1e-6)
    label_w = 12
    value_w = 10
    bar_w = max(20, width - label_w - value_w - 3)
    lines: list[str] = []

    def paint(text: str, code: str) -> str:
        return f"\x1b[{_ANSI[code]}m{text}\x1b[0m" if color and text else text

    def cell(t: float) -> float:
        return (t - origin) / total * bar_w

    for request, (r_start, r_end) in zip(requests, bounds, strict=True):
        lines.append(paint(_request_title(request, glyphs, several), "bold"))
        by_phase: dict[str, list[Span]] = {}
        for span in request_spans(request):
            by_phase.setdefault(span.name, []).append(span)
        conn = request["connection"]
        conn_label = f"connection #{conn['id']}" if conn is not None else "a connection"
        # A wait for the pool (``blocked``) is drawn when it is one: past a
        # millisecond (picking an idle connection takes microseconds).
        waited = [
            Span(name=POOL_WAIT, start=p.start, end=p.end, args={})
            for p in phases(request)
            if p.name == "blocked" and p.duration >= POOL_WAIT_SHOWN
        ]
        if waited:
            by_phase[POOL_WAIT] = waited
        for phase in (POOL_WAIT, *PHASES) if waited else PHASES:
            label = f"  {phase:<{label_w - 2}}"
            phase_spans = by_phase.get(phase)
            if not phase_spans:
                why = _why_absent(phase, request, conn_label)
                if why:
                    lines.append(f"{label}{glyphs.edge} {paint(why, 'dim')}")
                continue
            row = [" "] * bar_w
            for span in phase_spans:
                first = min(bar_w - 1, int(cell(span.start)))
                last = max(first, min(bar_w - 1, math.ceil(cell(span.end)) - 1))
                row[first : last + 1] = glyphs.bar * (last + 1 - first)
            bar = "".join(row).rstrip()
            bar = paint(bar, phase) + " " * (bar_w - len(bar))
            value = format_ms(sum(s.duration for s in phase_spans))
            if phase == "connect" and len(phase_spans) > 1:
                value += f" ({len(phase_spans)} tries)"
            if any(s.args.get("incomplete") for s in phase_spans):
                value += " (cut short)"
            lines.append(f"{label}{glyphs.edge}{bar}{glyphs.edge} {value:>{value_w}}")
        left, right = "0", format_ms(total)
        axis = left + " " * max(1, bar_w - len(left) - len(right)) + right
        lines.append(paint(f"{' ' * label_w}{glyphs.edge}{axis}{glyphs.edge}", "dim"))
        when = (
            f"{format_ms(r_start - origin)} {glyphs.arrow} {format_ms(r_end - origin)}"
        )
        lines.append(
            f"  request: {when} ({format_ms(r_end - r_start)}); "
            "hook calls, in ms on the axis above:"
        )
        for event in request["events"]:
            if not headers and event["hook"] == "wrote_header_field":
                continue
            t = f"{(event['time'] - origin) * 1000:9.3f}"
            args = format_args(event["hook"], event["args"])
            late = "  (after the call returned)" if event["after_return"] else ""
            line = (
                f"  {paint(t, 'dim')}  {event['hook']:<24} {args}{paint(late, 'dim')}"
            )
            lines.append(line.rstrip())
        if request["error"] is not None:
            lines.append(paint(f"  error: {request['error']}", "red"))
        lines.append("")
    text = "\n".join(lines)
    # Arguments may hold any character (header values, error messages).
    return text if unicode else text.encode("ascii", "backslashreplace").decode()


def _request_title(request: RequestData, glyphs: _Glyphs, source: bool) -> str:
    parts = [f"{request['method']} {request['url']}"]
    if request["status"] is not None:
        parts.append(f"{glyphs.arrow} {request['status']}")
    elif request["error"] is not None:
        parts.append(f"{glyphs.arrow} failed")
    conn = request["connection"]
    details = []
    attempt = request.get("attempt")
    if attempt:
        details.append(f"attempt {attempt[0]} of {attempt[1]}")
    if request.get("answered_by"):
        details.append(f"answered by {request['answered_by']}: mocked")
    if source and request.get("source"):
        details.append(str(request["source"]))
    if conn is not None and conn["protocol"]:
        details.append(conn["protocol"])
    if conn is not None and request["reused"] is not None:
        state = "reused" if request["reused"] else "new"
        # How the connection ended, unless it closed with its client (the usual).
        reason = conn.get("close_reason")
        if reason and reason != "client_closed":
            state += f", {CLOSE_TEXT.get(reason, reason)}"
        details.append(f"connection #{conn['id']} ({state})")
    outcome = request.get("outcome")
    if outcome in ("closed_early", "failed") and request["status"] is not None:
        details.append(f"ended: {OUTCOME_TEXT[outcome]}")
    if details:
        parts.append(f"  [{', '.join(details)}]")
    return "  ".join(parts[:2]) + "".join(parts[2:])


def _why_absent(phase: str, request: RequestData, conn: str) -> str:
    hooks = {e["hook"] for e in request["events"]}
    if phase in ("dns", "connect", "tls"):
        if request["reused"]:
            got = next((e for e in request["events"] if e["hook"] == "got_conn"), None)
            idle = ""
            if got is not None and got["args"].get("was_idle"):
                idle_time = got["args"].get("idle_time")
                if isinstance(idle_time, (int, float)):
                    idle = f", idle for {format_ms(idle_time)}"
            return f"skipped: reused {conn}{idle}" if phase == "dns" else "skipped"
        if phase == "dns" and "connect_start" in hooks:
            return "none: the URL's host is an IP address"
        if phase == "tls" and "connect_done" in hooks and "got_conn" in hooks:
            return "none: plain HTTP"
        if "got_conn" in hooks and phase != "tls":
            return "not observed (see the support matrix)"
        return "not reached" if request["error"] is not None else ""
    if phase in ("send", "wait", "transfer") and request["error"] is not None:
        return "not reached"
    return ""


def format_ms(seconds: float) -> str:
    """A duration in seconds as milliseconds, with precision that suits its size."""
    ms = seconds * 1000
    if ms == 0:
        return "0 ms"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"
