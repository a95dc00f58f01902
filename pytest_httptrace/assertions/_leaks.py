"""Leaks: responses that took a connection and were never closed (`find_leaks`,
`assert_no_leaks`); the rule itself is `_phases.is_leak`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._phases import is_leak
from ..recorder import Recorder, RequestRecord
from ._format import _conn_label, _made_at, _req
from ._subject import _fail, _requests


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
    from ..sources import leak_hint

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
