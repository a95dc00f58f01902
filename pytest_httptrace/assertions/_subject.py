"""What a helper was given: a request, a recorder or a list of events or requests,
coerced to what the helper works on; `_fail` raises the helpers' AssertionError.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

from ..recorder import Event, Recorder, RequestRecord
from ._format import _req, _short

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
    from ..sources import diagnose_all

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
