"""The assertion helpers on records built by hand (exact texts) and on real traffic.

Records are built with `make_request` / `make_recorder` below: fixed times, so the
failure texts are exact. ``test_assertions_pytester.py`` runs some of them through
pytest itself; the real-traffic tests at the end use the local test server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_httptrace.assertions import (
    HookMatcher,
    PatternItem,
    assert_after_return,
    assert_concurrent,
    assert_connections_opened,
    assert_hook_order,
    assert_hook_sequence,
    assert_max_connections,
    assert_new_connection,
    assert_no_leaks,
    assert_reused,
    assert_shared_connection,
    find_leaks,
    hook,
    render_timeline,
)
from pytest_httptrace.recorder import ConnectionRecord, Event, Recorder, RequestRecord
from pytest_httptrace.trace import TLSConnectionState

# -- builders (also copied into pytester runs by test_assertions_pytester.py) ----------

_indices = itertools.count()


def make_connection(
    id: int,
    *,
    protocol: str = "HTTP/1.1",
    opened: float | None = None,
    closed: float | None = None,
) -> ConnectionRecord:
    """A connection record as the recorder would make it."""
    from pytest_httptrace.trace import TracedConnection

    traced = TracedConnection.of(
        object(), id=id, protocol=protocol, opened_at=opened, closed_at=closed
    )
    return ConnectionRecord(id=id, _traced=traced, _conn=traced.conn)


def make_request(
    hooks: Sequence[Any],
    *,
    id: int = 1,
    url: str = "https://example.test/",
    method: str = "GET",
    start: float = 0.0,
    step: float = 0.001,
    conn: ConnectionRecord | None = None,
    status: int | None = 200,
    error: BaseException | None = None,
    returned: float | None = None,
    closed: float | None = None,
    origin: str | None = "test_x.py:12",
    thread: str = "MainThread",
    task: str | None = None,
    phase: str = "call",
) -> RequestRecord:
    """A request record with one event per item of ``hooks``.

    An item is a hook name, ``(name, {args})`` or ``(name, {args}, time)``; without a
    time, events are ``step`` seconds apart from ``start``. Arguments not given get
    plausible defaults. Events after ``returned`` have ``after_return`` set.
    """
    from pytest_httptrace.recorder import make_event
    from pytest_httptrace.trace import TracedRequest

    defaults: dict[str, dict[str, Any]] = {
        "get_conn": {"host_port": "example.test:443"},
        "got_conn": {
            "conn": None,
            "reused": False,
            "was_idle": False,
            "idle_time": 0.0,
        },
        "dns_start": {"host": "example.test"},
        "dns_done": {"addrs": ["127.0.0.1"], "err": None, "coalesced": False},
        "connect_start": {"network": "tcp", "addr": "127.0.0.1:443"},
        "connect_done": {"network": "tcp", "addr": "127.0.0.1:443", "err": None},
        "wrote_request": {"err": None},
        "put_idle_conn": {"err": None},
    }
    traced = TracedRequest(method=method, url=url, chain=())
    traced.status, traced.error = status, error
    traced.returned_at, traced.closed_at = returned, closed
    record = RequestRecord(
        id=id, method=method, url=url, phase=phase, origin=origin, _traced=traced
    )
    record.connection = conn
    if conn is not None:
        conn.requests.append(record)
    for i, item in enumerate(hooks):
        name, args, at = (
            (item, {}, None) if isinstance(item, str) else (*item, None)[:3]
        )
        at = start + i * step if at is None else at
        event = make_event(
            name,
            request=record,
            time=at,
            thread=thread,
            task=task,
            after_return=returned is not None and at > returned,
            index=next(_indices),
            **{**defaults.get(name, {}), **args},
        )
        record.events.append(event)
    return record


def make_recorder(*requests: RequestRecord) -> Recorder:
    """A stopped recorder holding ``requests`` (events merged in time order)."""
    rec = Recorder(_private=True)
    rec._requests.extend(requests)
    events = [e for r in requests for e in r.events]
    rec._events.extend(sorted(events, key=lambda e: (e.time, e.index)))
    return rec


# -- scenarios -------------------------------------------------------------------------

TLS = TLSConnectionState(
    version="TLSv1.3", negotiated_protocol="http/1.1", handshake_complete=True
)
NEW_CONNECTION = [
    "get_conn",
    "dns_start",
    "dns_done",
    "connect_start",
    "connect_done",
    "tls_handshake_start",
    ("tls_handshake_done", {"state": TLS, "err": None}),
    "got_conn",
    ("wrote_header_field", {"key": "Host", "values": ["example.test"]}),
    ("wrote_header_field", {"key": "Accept", "values": ["*/*"]}),
    "wrote_headers",
    "wrote_request",
    "got_first_response_byte",
    "put_idle_conn",
]
REUSED = [
    "get_conn",
    ("got_conn", {"reused": True, "was_idle": True, "idle_time": 0.25}),
    ("wrote_header_field", {"key": "Host", "values": ["example.test"]}),
    "wrote_headers",
    "wrote_request",
    "got_first_response_byte",
    "put_idle_conn",
]


def new_request(**kwargs: Any) -> RequestRecord:
    kwargs.setdefault("conn", make_connection(1))
    kwargs.setdefault("returned", 0.0125)
    kwargs.setdefault("closed", 0.0125)
    return make_request(NEW_CONNECTION, **kwargs)


def fails(fn: Any, *args: Any, **kwargs: Any) -> str:
    """The message of the AssertionError ``fn(*args, **kwargs)`` raises."""
    with pytest.raises(AssertionError) as excinfo:
        fn(*args, **kwargs)
    return str(excinfo.value)


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


# -- hook() ----------------------------------------------------------------------------


def test_hook_rejects_an_unknown_name_with_a_suggestion() -> None:
    with pytest.raises(
        ValueError, match=r"unknown hook name 'got_con'\. Did you mean 'got_conn'\?"
    ):
        hook("got_con")


def test_hook_rejects_an_argument_the_hook_does_not_have() -> None:
    with pytest.raises(TypeError) as excinfo:
        hook("got_conn", reuse=True)
    assert str(excinfo.value) == (
        "hook('got_conn') has no argument 'reuse'. got_conn's arguments: "
        "conn, reused, was_idle, idle_time."
    )
    with pytest.raises(TypeError, match=r"hook\('wrote_headers'\) takes no arguments"):
        hook("wrote_headers", err=None)


def test_hook_repr_names_values_classes_and_callables() -> None:
    def short(seconds: float) -> bool:
        return seconds < 1

    matcher = hook("got_conn", reused=True, idle_time=short, conn=object)
    assert (
        repr(matcher) == "hook('got_conn', reused=True, idle_time=short, conn=object)"
    )
    assert repr(hook("wrote_request", err=lambda e: e is None)) == (
        "hook('wrote_request', err=<lambda>)"
    )


def _got_conn(**args: Any) -> Event:
    return make_request([("got_conn", args)]).events[0]


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        (hook("got_conn"), True),
        (hook("got_conn", reused=True), True),
        (hook("got_conn", reused=False), False),
        (hook("got_conn", idle_time=lambda s: s > 0.1), True),
        (hook("got_conn", idle_time=lambda s: s > 1), False),
        (hook("got_conn", idle_time=float), True),
        (hook("got_conn", idle_time=str), False),
        (hook("got_conn", idle_time=lambda s: 1 / 0), False),
        (hook("got_conn", reused=True, was_idle=False), False),
        (hook("get_conn"), False),
    ],
)
def test_hook_matcher_compares_values_callables_and_classes(
    matcher: HookMatcher, expected: bool
) -> None:
    event = _got_conn(reused=True, was_idle=True, idle_time=0.25)
    assert matcher.matches(event) is expected


def test_hook_matcher_explains_each_mismatching_argument() -> None:
    event = _got_conn(reused=False, idle_time=0.25)
    matcher = hook(
        "got_conn",
        reused=True,
        was_idle=False,
        idle_time=lambda s: 1 / 0,
        conn=str,
    )
    assert matcher.explain(event) == [
        "reused: expected True, got False",
        "idle_time: <lambda>(0.25) raised ZeroDivisionError('division by zero')",
        "conn: expected an instance of str, got None",
    ]
    assert hook("got_conn", idle_time=lambda s: s > 1).explain(event) == [
        "idle_time: <lambda>(0.25) returned False"
    ]
    assert hook("get_conn").explain(event) == []


def test_hook_matcher_on_an_argument_that_was_not_recorded() -> None:
    event = make_request(["got_conn"]).events[0]
    bare = dataclasses.replace(event, _args={})
    assert not hook("got_conn", reused=False).matches(bare)
    assert hook("got_conn", reused=False).explain(bare) == ["reused: not recorded"]


# -- assert_hook_sequence: matching ----------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        [
            "get_conn",
            "dns_start",
            "dns_done",
            "connect_start",
            "connect_done",
            "tls_handshake_start",
            "tls_handshake_done",
            "got_conn",
            "wrote_headers",
            "wrote_request",
            "got_first_response_byte",
            "put_idle_conn",
        ],
        ["get_conn", ...],
        [..., "put_idle_conn"],
        [...],
        [..., ...],
        ["get_conn", ..., hook("got_conn", reused=False), ..., "put_idle_conn"],
        [..., "got_conn", "wrote_headers", ...],
        [..., "wrote_header_field", "wrote_header_field", "wrote_headers", ...],
        [..., hook("wrote_header_field", key="Accept"), "wrote_headers", ...],
        ["get_conn", ..., "got_conn", ..., ..., "put_idle_conn"],
    ],
)
def test_matching_patterns_pass(pattern: list[PatternItem]) -> None:
    assert_hook_sequence(new_request(), pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        ["get_conn"],
        ["dns_start", ...],
        [..., "got_first_response_byte"],
        [..., hook("got_conn", reused=True), ...],
        ["get_conn", "got_conn", ...],
        [..., "got_conn", "wrote_request", ...],
        [..., "got_conn", "wrote_headers", ..., "wrote_header_field", ...],
        [],
    ],
)
def test_mismatching_patterns_fail(pattern: list[PatternItem]) -> None:
    fails(assert_hook_sequence, new_request(), pattern)


def test_wrote_header_field_is_compared_only_when_the_pattern_names_it() -> None:
    request = make_request(REUSED)
    assert_hook_sequence(request, ["get_conn", "got_conn", "wrote_headers", ...])
    message = fails(
        assert_hook_sequence,
        request,
        ["get_conn", "got_conn", "wrote_headers", ..., "wrote_header_field", ...],
    )
    assert "[2] wrote_header_field Host: example.test" in message
    assert "not compared" not in message


def test_pattern_items_are_checked_before_anything_else() -> None:
    empty = make_recorder()
    with pytest.raises(ValueError) as excinfo:
        assert_hook_sequence(empty, ["get_conn", "got_con", ...])
    assert str(excinfo.value).startswith(
        "assert_hook_sequence(): item 1 of the pattern, 'got_con', is not a hook name. "
        "Did you mean 'got_conn'?"
    )
    with pytest.raises(TypeError) as type_info:
        assert_hook_sequence(empty, ["get_conn", ..., 42])  # type: ignore[list-item]
    assert str(type_info.value) == (
        "assert_hook_sequence(): item 2 of the pattern is 42 (int); expected a hook "
        "name (str), hook(...) or ... (Ellipsis)."
    )
    with pytest.raises(TypeError, match="expected must be a list"):
        assert_hook_sequence(empty, "get_conn")


def test_sources_request_recorder_and_lists() -> None:
    a = make_request(REUSED, id=1)
    b = make_request(REUSED, id=2, start=0.0005)
    pattern: list[PatternItem] = ["get_conn", "got_conn", ...]
    assert_hook_sequence(a, pattern)
    assert_hook_sequence(make_recorder(a), pattern)
    assert_hook_sequence(list(a.events), pattern)
    # Several requests: all events in time order, interleaved.
    both: list[PatternItem] = ["get_conn", "get_conn", "got_conn", "got_conn", ...]
    assert_hook_sequence(make_recorder(a, b), both)
    assert_hook_sequence([a, b], both)
    fails(assert_hook_sequence, make_recorder(a, b), pattern)
    with pytest.raises(TypeError, match=r"item 1 of the source is 'got_conn' \(str\)"):
        assert_hook_sequence([a.events[0], "got_conn"], pattern)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a RequestRecord, a Recorder or a list"):
        assert_hook_sequence(42, pattern)  # type: ignore[arg-type]


def test_empty_recorder_names_the_likely_causes() -> None:
    message = fails(assert_hook_sequence, make_recorder(), ["get_conn", ...])
    assert message == dedent(
        """
        no request was recorded. Likely causes:
          - the request ran in a thread that does not see the trace: with_client_trace() follows the context (run the thread's target in contextvars.copy_context(), or use the httptrace_recorder fixture, which records every thread);
          - the client is not one that pytest-httptrace traces (httpx, httpx2, aiohttp, urllib3 and requests are; see the support matrix);
          - the plugin is disabled or the instrumentation is not installed (with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1, run pytest with -p httptrace), or the recorder was not recording (Recorder.start() ... stop()).
        """  # noqa: E501
    )
    assert fails(assert_hook_sequence, [], [...]).startswith(
        "no request was recorded (the list given is empty). Likely causes:"
    )


def test_empty_recorder_points_at_other_phases() -> None:
    rec = make_recorder(make_request(REUSED, phase="setup"))
    assert rec.requests == []
    message = fails(assert_no_leaks, rec)
    assert message.startswith("no request was recorded. Likely causes:")
    assert message.endswith(
        "Requests were recorded in other phases (1 in setup): see "
        "recorder.get_records(phase)."
    )


# -- assert_hook_sequence: failure texts -----------------------------------------------


def test_failure_text_for_an_argument_mismatch() -> None:
    message = fails(
        assert_hook_sequence,
        make_request(REUSED, returned=0.0055, closed=0.0055),
        ["get_conn", hook("got_conn", reused=False), ...],
    )
    assert message == dedent(
        """
        hooks of request #1 GET https://example.test/ do not match the pattern (diverged at [1] got_conn):
          matched: 'get_conn'                      [0] get_conn host_port='example.test:443'
          nomatch: hook('got_conn', reused=False)  [1] got_conn reused=True was_idle=True idle_time=0.25
                                                       reused: expected False, got True
        diverged at [1] got_conn: expected hook('got_conn', reused=False)
        remains unmatched: hook('got_conn', reused=False), ...
        (not compared: 1 wrote_header_field call; a pattern that names wrote_header_field compares them)

        requests:
          #1 GET https://example.test/  (status 200, returned at 5.500 ms, closed at 5.500 ms, made at test_x.py:12)
        timeline (ms since the first hook call):
                  ms  req  conn  thread      hook
          [0]  0.000  #1   -     MainThread  get_conn host_port='example.test:443'
          [1]  1.000  #1   -     MainThread  got_conn reused=True was_idle=True idle_time=0.25
               2.000  #1   -     MainThread  wrote_header_field Host: example.test
          [2]  3.000  #1   -     MainThread  wrote_headers
          [3]  4.000  #1   -     MainThread  wrote_request
          [4]  5.000  #1   -     MainThread  got_first_response_byte
          [5]  6.000  #1   -     MainThread  put_idle_conn  (after return)
        """  # noqa: E501
    )


def test_failure_text_when_a_hook_never_comes() -> None:
    message = fails(
        assert_hook_sequence,
        make_request(REUSED[:4], conn=make_connection(3)),
        ["get_conn", ..., "got_first_response_byte", ...],
    )
    assert message.split("\n\n")[0] == dedent(
        """
        hooks of request #1 GET https://example.test/ do not match the pattern (no hook from [1] on matches 'got_first_response_byte'):
          matched: 'get_conn'                 [0] get_conn host_port='example.test:443'
          nomatch: 'got_first_response_byte'  [1] got_conn reused=True was_idle=True idle_time=0.25
              and:                            [2] wrote_headers
        diverged: no hook from [1] on matches 'got_first_response_byte'
        remains unmatched: 'got_first_response_byte', ...
        got_first_response_byte never ran: the response was never closed: its connection is still taken.
        (not compared: 1 wrote_header_field call; a pattern that names wrote_header_field compares them)
        """  # noqa: E501
    )


def test_failure_text_when_the_tail_of_the_pattern_never_ran() -> None:
    """Issue #13 item 6: not "diverged at [9] wrote_request", but which hook never
    ran and what happened to the connection instead."""
    conn = make_connection(1, opened=0.0065, closed=0.0107)
    request = make_request(
        NEW_CONNECTION[:-1], conn=conn, returned=0.0135, closed=0.01067
    )
    message = fails(
        assert_hook_sequence, request, [..., "got_first_response_byte", "put_idle_conn"]
    )
    assert message.split("\n\n")[0] == dedent(
        """
        hooks of request #1 GET https://example.test/ do not match the pattern ('put_idle_conn' never ran):
          skipped: ...                        [0] get_conn .. [9] wrote_request (10 hooks)
          matched: 'got_first_response_byte'  [10] got_first_response_byte
          nomatch: 'put_idle_conn'            (end of the recording)
        diverged at the end of the recording: 'put_idle_conn' never ran after [10] got_first_response_byte
        remains unmatched: 'put_idle_conn'
        put_idle_conn never ran: the response was closed at 10.670 ms without going back to the pool; its connection c1 was closed at 10.700 ms.
        hint: put_idle_conn runs only when an HTTP/1.1 connection goes back to the idle pool: not for HTTP/2, not after `Connection: close`, and for a streamed response only once it was read or closed.
        (not compared: 2 wrote_header_field calls; a pattern that names wrote_header_field compares them)
        """  # noqa: E501
    )
    # A longer tail: only what is missing is "never ran".
    message = fails(
        assert_hook_sequence,
        request,
        [..., "wrote_request", "got_first_response_byte", "put_idle_conn"],
    )
    assert "('put_idle_conn' never ran)" in message.splitlines()[0]
    # On HTTP/2 the explanation says so.
    h2 = make_request(
        REUSED[:-1], conn=make_connection(2, protocol="HTTP/2"), closed=0.006
    )
    message = fails(assert_hook_sequence, h2, [..., "put_idle_conn"])
    assert (
        "put_idle_conn never ran: the response was closed at 6.000 ms without going "
        "back to the pool; its connection c2 is HTTP/2, which is never put back idle."
    ) in message.splitlines()


def test_failure_text_when_the_recording_ends_first() -> None:
    message = fails(
        assert_hook_sequence,
        make_request(["get_conn", "got_conn"]),
        ["get_conn", "got_conn", "wrote_headers", ...],
    )
    lines = message.splitlines()
    assert lines[0] == (
        "hooks of request #1 GET https://example.test/ do not match the pattern "
        "(the recording ended after 2 hooks):"
    )
    assert lines[3] == "  nomatch: 'wrote_headers'  (end of the recording)"
    assert lines[4] == (
        "diverged at the end of the recording: expected 'wrote_headers' after "
        "[1] got_conn"
    )
    assert lines[5] == "remains unmatched: 'wrote_headers', ..."


def test_failure_text_for_hooks_after_the_end_of_the_pattern() -> None:
    message = fails(
        assert_hook_sequence, make_request(REUSED), ["get_conn", "got_conn"]
    )
    assert message.split("\n(not compared")[0] == dedent(
        """
        hooks of request #1 GET https://example.test/ do not match the pattern (4 more hooks than the pattern):
          matched: 'get_conn'            [0] get_conn host_port='example.test:443'
          matched: 'got_conn'            [1] got_conn reused=True was_idle=True idle_time=0.25
          nomatch: (end of the pattern)  [2] wrote_headers
              and:                       [3] wrote_request
              and:                       [4] got_first_response_byte
              and:                       [5] put_idle_conn
        diverged at [2] wrote_headers: the pattern ended, but 4 more hooks were recorded
        hint: end the pattern with ... to allow hooks after it.
        """  # noqa: E501
    )


def test_hint_when_a_skip_is_missing() -> None:
    message = fails(assert_hook_sequence, new_request(), ["get_conn", "got_conn", ...])
    assert (
        "hint: 'got_conn' matches [7] got_conn; to skip the 6 hooks before it, put "
        "... in front of it in the pattern."
    ) in message.splitlines()


def test_hint_when_the_last_hooks_match_too_early() -> None:
    message = fails(
        assert_hook_sequence,
        new_request(),
        [..., "wrote_request", "got_first_response_byte"],
    )
    assert message.splitlines()[1:6] == [
        "  skipped: ...              [0] get_conn .. [9] wrote_request (10 hooks)",
        "  nomatch: 'wrote_request'  [10] got_first_response_byte",
        "diverged at [10] got_first_response_byte: expected 'wrote_request'",
        "remains unmatched: 'wrote_request', 'got_first_response_byte'",
        "hint: 'wrote_request', 'got_first_response_byte' matches at [9], but the "
        "pattern must end with the last hooks recorded and 1 came after it: end the "
        "pattern with ... to allow them.",
    ]


def test_hint_for_the_closest_attempt() -> None:
    message = fails(
        assert_hook_sequence, new_request(), [..., "got_conn", "wrote_request", ...]
    )
    assert message.splitlines()[1:7] == [
        "  skipped: ...              [0] get_conn .. [6] tls_handshake_done (7 hooks)",
        "  matched: 'got_conn'       [7] got_conn reused=False was_idle=False",
        "  nomatch: 'wrote_request'  [8] wrote_headers",
        "diverged at [8] wrote_headers: expected 'wrote_request'",
        "remains unmatched: 'wrote_request', ...",
        "hint: no position from [0] on matches 'got_conn', 'wrote_request' in a row; "
        "the closest attempt is shown.",
    ]


def test_empty_pattern_fails_on_a_recording() -> None:
    message = fails(assert_hook_sequence, make_request(["get_conn", "got_conn"]), [])
    assert message.splitlines()[:4] == [
        "hooks of request #1 GET https://example.test/ do not match the pattern "
        "(the pattern is empty):",
        "  nomatch: (empty pattern)  [0] get_conn host_port='example.test:443'",
        "      and:                  [1] got_conn reused=False was_idle=False",
        "diverged at [0] get_conn: the pattern is empty",
    ]


def test_several_requests_are_named_in_the_transcript_and_the_legend() -> None:
    a = make_request(REUSED[:2], id=1, url="https://example.test/a")
    b = make_request(
        REUSED[:2],
        id=2,
        url="https://example.test/b",
        start=0.0005,
        thread="worker-1",
        task="Task-7",
        status=None,
        error=ConnectionResetError("reset"),
    )
    message = fails(assert_hook_sequence, make_recorder(a, b), [..., "put_idle_conn"])
    assert message.split("\n\n")[1] == dedent(
        """
        requests:
          #1 GET https://example.test/a  (status 200, never closed, made at test_x.py:12)
          #2 GET https://example.test/b  (error ConnectionResetError('reset'), made at test_x.py:12)
        timeline (ms since the first hook call):
                  ms  req  conn  thread           hook
          [0]  0.000  #1   -     MainThread       get_conn host_port='example.test:443'
          [1]  0.500  #2   -     worker-1/Task-7  get_conn host_port='example.test:443'
          [2]  1.000  #1   -     MainThread       got_conn reused=True was_idle=True idle_time=0.25
          [3]  1.500  #2   -     worker-1/Task-7  got_conn reused=True was_idle=True idle_time=0.25
        """  # noqa: E501
    )
    assert "  nomatch: 'put_idle_conn'  (end of the recording)" in message.splitlines()


def test_long_recordings_are_shortened_around_the_divergence() -> None:
    hooks = ["get_conn", "got_conn"] + ["wrote_headers"] * 200 + ["wrote_request"]
    request = make_request(hooks)
    message = fails(
        assert_hook_sequence, request, ["get_conn", "got_conn", ..., "put_idle_conn"]
    )
    lines = message.splitlines()
    assert "  nomatch: 'put_idle_conn'  (end of the recording)" in lines
    timeline = lines[lines.index("timeline (ms since the first hook call):") + 1 :]
    assert len(timeline) < 45
    assert timeline[-1].endswith("wrote_request")
    assert any(line.startswith("  ... (") for line in timeline)
    search_fail = fails(assert_hook_sequence, request, [..., "got_100_continue", ...])
    assert "      and:                     ... 190 more, up to [202] wrote_request" in (
        search_fail.splitlines()
    )


# -- order and concurrency -------------------------------------------------------------


def two_sequential() -> tuple[RequestRecord, RequestRecord]:
    conn = make_connection(1)
    a = make_request(NEW_CONNECTION, id=1, conn=conn, returned=0.0135, closed=0.0125)
    b = make_request(REUSED, id=2, conn=conn, start=0.014, returned=0.0205, closed=0.02)
    return a, b


def test_hook_order_passes_and_fails_with_both_times() -> None:
    a, b = two_sequential()
    assert_hook_order(a, "put_idle_conn", b, "get_conn")
    assert_hook_order(a, "got_conn", a, "wrote_headers")
    assert_hook_order(
        a, hook("got_conn", reused=False), b, hook("got_conn", reused=True)
    )
    message = fails(assert_hook_order, b, "put_idle_conn", a, "get_conn")
    assert message.split("\n\n")[0] == dedent(
        """
        request #1's get_conn came before request #2's put_idle_conn, expected after it:
          #2 put_idle_conn  at 20.000 ms
          #1 get_conn       at 0.000 ms
          (20.000 ms earlier)
        """
    )


def test_hook_order_names_a_missing_hook_with_a_hint() -> None:
    a, b = two_sequential()
    message = fails(assert_hook_order, a, "got_100_continue", b, "get_conn")
    assert message == (
        "request #1 GET https://example.test/ has no got_100_continue call; its hooks: "
        "get_conn, dns_start, dns_done, connect_start, connect_done, "
        "tls_handshake_start, tls_handshake_done, got_conn, wrote_header_field x2, "
        "wrote_headers, wrote_request, got_first_response_byte, put_idle_conn.\n"
        "hint: got_100_continue runs only for a request sent with `Expect: "
        "100-continue` whose server answered 100 Continue."
    )
    with pytest.raises(ValueError, match="Did you mean 'put_idle_conn'"):
        assert_hook_order(a, "put_idle_con", b, "get_conn")
    with pytest.raises(TypeError, match="takes one request"):
        assert_hook_order(make_recorder(a), "put_idle_conn", b, "get_conn")  # type: ignore[arg-type]


def test_concurrent_requests_overlap() -> None:
    a = make_request(REUSED, id=1, start=0.0)
    b = make_request(REUSED, id=2, start=0.003)
    assert_concurrent(a, b)
    assert_concurrent(b, a)
    # A response closed later keeps the request in flight.
    late = make_request(REUSED[:2], id=3, start=0.0, closed=0.050)
    after = make_request(REUSED, id=4, start=0.040)
    assert_concurrent(late, after)


def test_sequential_requests_are_not_concurrent() -> None:
    a, b = two_sequential()
    message = fails(assert_concurrent, b, a)
    assert message.split("\n\n")[0] == dedent(
        """
        requests #2 and #1 were not in flight at the same time:
          #1 GET https://example.test/  from 0.000 ms to 13.500 ms
          #2 GET https://example.test/  from 14.000 ms to 20.500 ms
          (#2 started 0.500 ms after #1 ended)
        hint: requests made one after the other never overlap; start them from threads or asyncio tasks (asyncio.gather) to make them concurrent.
        """  # noqa: E501
    )
    touching = make_request(REUSED, id=3, start=0.0205)
    fails(assert_concurrent, b, touching)


def parallel(
    n: int, *, shared: bool = False, closed: bool = True, step: float = 0.001
) -> Recorder:
    """``n`` requests started ``step`` apart, with hooks at +0, +2, +4 and +6 ms and
    responses closed at +6 ms; one connection each, or one shared HTTP/2 connection."""
    one = make_connection(1, protocol="HTTP/2")
    requests = []
    for i in range(n):
        reused = shared and i > 0
        hooks = [
            "get_conn",
            ("got_conn", {"reused": reused}),
            "wrote_headers",
            "wrote_request",
        ]
        requests.append(
            make_request(
                hooks,
                id=i + 1,
                url=f"https://example.test/{i}",
                conn=one if shared else make_connection(i + 1),
                start=i * step,
                step=0.002,
                closed=i * step + 0.006 if closed else None,
            )
        )
    return make_recorder(*requests)


def test_max_connections_open() -> None:
    rec = parallel(3)
    assert_max_connections(rec, 3)
    message = fails(assert_max_connections, rec, 2)
    assert message == dedent(
        """
        expected at most 2 connections open at once, 3 were open at 4.000 ms:
          c1  opened by #1 GET https://example.test/0, from 2.000 ms, never closed
          c2  opened by #2 GET https://example.test/1, from 3.000 ms, never closed
          c3  opened by #3 GET https://example.test/2, from 4.000 ms, never closed
        (a connection counts as open from when it was dialed until it was closed; state='in_use' counts connections held by a request)
        hint: is the pool limited (httpx.Limits(max_connections=...))? is one client shared by the requests? are responses closed before the next request?
        """  # noqa: E501
    )


def test_max_connections_closed_connections_stop_counting() -> None:
    conns = [make_connection(1, closed=0.003), make_connection(2)]
    a = make_request(["get_conn", "got_conn"], id=1, conn=conns[0], closed=0.002)
    b = make_request(["get_conn", "got_conn"], id=2, conn=conns[1], start=0.005)
    rec = make_recorder(a, b)
    assert_max_connections(rec, 1)
    assert_max_connections(rec, 1, state="in_use")
    assert_connections_opened(rec, 2)


def test_max_connections_in_use() -> None:
    rec = parallel(3, step=0.003)  # held from +2 to +6 ms: 2-6, 5-9, 8-12 ms
    assert_max_connections(rec, 2, state="in_use")
    fails(assert_max_connections, rec, 2)  # but all three stay open
    message = fails(assert_max_connections, rec, 1, state="in_use")
    assert message.splitlines()[:4] == [
        "expected at most 1 connection in use at once, 2 were in use at 5.000 ms:",
        "  c1  in use by #1 GET https://example.test/0, from 2.000 ms to 6.000 ms",
        "  c2  in use by #2 GET https://example.test/1, from 5.000 ms to 9.000 ms",
        "(a connection counts as in use from a request's got_conn until its "
        "response is closed)",
    ]


def test_max_connections_in_use_a_leaked_response_holds_to_the_end() -> None:
    rec = parallel(2, step=0.010, closed=False)
    message = fails(assert_max_connections, rec, 1, state="in_use")
    assert "never released" in message


def test_max_connections_http2_requests_on_one_connection_count_once() -> None:
    rec = parallel(5, shared=True)
    assert_max_connections(rec, 1)
    assert_max_connections(rec, 1, state="in_use")
    assert_connections_opened(rec, 1)


def test_max_connections_bad_arguments() -> None:
    rec = parallel(1)
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        assert_max_connections(rec, -1)
    with pytest.raises(ValueError, match="state must be 'open' or 'in_use'"):
        assert_max_connections(rec, 1, state="busy")  # type: ignore[arg-type]
    assert fails(assert_max_connections, make_recorder(), 1).startswith(
        "no request was recorded."
    )


def test_shared_connection() -> None:
    rec = parallel(2, shared=True)
    assert_shared_connection(rec[0], rec[1])
    apart = parallel(2)
    message = fails(assert_shared_connection, apart[0], apart[1])
    assert message.split("\nhint:")[0] == dedent(
        """
        requests #1 and #2 did not share a connection: #1 used c1, #2 used c2:
          #1 GET https://example.test/0  c1 HTTP/1.1 new
          #2 GET https://example.test/1  c2 HTTP/1.1 new
        """
    )
    failed = make_request(
        ["get_conn", "dns_start"], id=3, status=None, error=OSError("no route")
    )
    assert fails(assert_shared_connection, apart[0], failed) == (
        "request #3 GET https://example.test/ never got a connection (no got_conn "
        "call); it failed with OSError('no route').\nits hooks: get_conn, dns_start"
    )


# -- reuse -----------------------------------------------------------------------------


def test_reused_and_new_connection() -> None:
    a, b = two_sequential()
    assert_new_connection(a)
    assert_reused(b)
    message = fails(assert_reused, a, [a, b])
    assert message.split("\n\n")[0] == dedent(
        """
        request #1 GET https://example.test/ got a new connection (c1 HTTP/1.1 new), expected a reused one:
          got_conn reused=False was_idle=False
        why: no earlier request to https://example.test:443 was recorded: the first request to an origin dials.
        hint: a connection is reused only by the same client (share one client, do not create one per request), once the previous response was read or closed (HTTP/1.1), and while the server keeps it alive (no `Connection: close`, keep-alive timeout not expired).
        """  # noqa: E501
    )
    message = fails(assert_new_connection, b)  # finds #1 on its connection
    assert message.splitlines()[:3] == [
        "request #2 GET https://example.test/ reused a connection (c1 HTTP/1.1 reused, "
        "idle for 250.000 ms), expected a new one:",
        "  got_conn reused=True was_idle=True idle_time=0.25",
        "why: #2 reused connection c1, which #1 gave back at 13.000 ms (idle for "
        "250.000 ms): the requests of one client share its pool.",
    ]
    # The earlier request is shown with this one.
    assert "\n  #1 GET https://example.test/  (status 200" in message
    with pytest.raises(TypeError, match="takes one request"):
        assert_reused([a])  # type: ignore[arg-type]


def test_reuse_verdict_for_a_client_per_request() -> None:
    from pytest_httptrace import reuse_verdict

    a = make_request(
        NEW_CONNECTION,
        id=1,
        conn=make_connection(1, closed=0.0145),
        returned=0.0135,
        closed=0.0125,
    )
    b = make_request(
        NEW_CONNECTION, id=2, conn=make_connection(2), start=0.015, closed=0.03
    )
    verdict = reuse_verdict(b, [a, b])
    assert (verdict.reused, verdict.earlier) == (False, a)
    assert verdict.reason == (
        "connection c1 of the earlier request #1 went back to the pool at 13.000 ms "
        "but was closed at 14.500 ms, before #2 started at 15.000 ms: its client was "
        "closed with it (one client per request?), or the server closed it"
    )
    assert reuse_verdict(a, [a, b]).earlier is None


def test_connections_opened() -> None:
    a, b = two_sequential()
    rec = make_recorder(a, b)
    assert_connections_opened(rec, 1)
    assert_connections_opened([a, b], 1)
    message = fails(assert_connections_opened, rec, 2)
    assert message == dedent(
        """
        expected exactly 2 connections to be opened, 1 was:
          c1  opened by #1 GET https://example.test/ (made at test_x.py:12)
        reused: #2 (c1)
        hint: fewer connections than expected: requests of one client reuse its pooled connections, and HTTP/2 multiplexes concurrent requests on one.
        """  # noqa: E501
    )
    message = fails(assert_connections_opened, parallel(3), 1)
    assert (
        message.splitlines()[0] == "expected exactly 1 connection to be opened, 3 were:"
    )
    assert message.splitlines()[-1].startswith("hint: more connections than expected")


def test_connections_opened_zero_on_an_empty_recording() -> None:
    """Issue #13 item 11: "no request reached the network" is a valid answer."""
    from pytest_httptrace.assertions import _nothing_recorded

    empty = make_recorder()
    assert_connections_opened(empty, 0)
    assert_connections_opened([], 0)
    message = fails(assert_connections_opened, empty, 1)
    first, rest = message.split("\n", 1)
    assert first == (
        "expected exactly 1 connection to be opened, 0 were: no request was recorded."
    )
    assert rest == _nothing_recorded(empty)
    # Helpers that need a request still say that nothing was recorded.
    assert fails(assert_max_connections, empty, 1) == _nothing_recorded(empty)


# -- after return ----------------------------------------------------------------------


def test_after_return() -> None:
    streamed = make_request(REUSED, returned=0.0045, closed=0.0055)
    assert_after_return(streamed, "put_idle_conn")
    assert_after_return(streamed, hook("put_idle_conn", err=None))
    assert "  [after return]" not in render_timeline(streamed)
    assert render_timeline(streamed).endswith("put_idle_conn  (after return)")
    message = fails(assert_after_return, streamed, "wrote_request")
    assert message.split("\n\n")[0] == dedent(
        """
        request #1 GET https://example.test/: wrote_request ran before the call returned, expected after it:
          wrote_request at 4.000 ms; the call returned at 4.500 ms
        hint: for a response that is read inside the call (client.get(...)), the connection goes back to the pool before the call returns; with client.stream(...) it goes back when the response is closed.
        """  # noqa: E501
    )
    message = fails(assert_after_return, make_request(REUSED[:3]), "put_idle_conn")
    assert message.splitlines()[1].startswith(
        "hint: put_idle_conn runs only when an HTTP/1.1 connection goes back"
    )


# -- leaks -----------------------------------------------------------------------------


def test_find_leaks() -> None:
    closed = make_request(REUSED, id=1, closed=0.005)
    leaked = make_request(REUSED[:5], id=2, closed=None, origin="test_user.py:7")
    failed_early = make_request(
        ["get_conn", "got_conn"], id=3, status=None, error=OSError("reset")
    )
    no_conn = make_request(["get_conn"], id=4, status=None, error=None)
    failed_mid_body = make_request(REUSED[:5], id=5, error=OSError("reset"))
    rec = make_recorder(closed, leaked, failed_early, no_conn, failed_mid_body)
    assert find_leaks(rec) == [leaked, failed_mid_body]
    assert find_leaks([closed, leaked]) == [leaked]
    assert find_leaks(leaked) == [leaked]
    assert find_leaks(make_recorder()) == []


def test_no_leaks_names_request_url_and_origin() -> None:
    conn = make_connection(4)
    ok = make_request(REUSED, id=1, closed=0.005)
    leaked = make_request(
        REUSED[:5],
        id=2,
        url="https://example.test/stream/3",
        conn=conn,
        closed=None,
        origin="test_user.py:7",
    )
    assert_no_leaks(make_recorder(ok))
    message = fails(assert_no_leaks, make_recorder(ok, leaked))
    assert message == dedent(
        """
        1 response was never closed: its connection was taken and not given back:
          #2 GET https://example.test/stream/3  (status 200, connection c4, made at test_user.py:7)
        hint: close the response when done with it (a `with` block around the request, or its close/release method): that gives its connection back to the pool.
        """  # noqa: E501
    )
    two = make_request(REUSED[:5], id=3, closed=None, origin=None, status=None)
    message = fails(assert_no_leaks, [leaked, two])
    assert message.splitlines()[0] == (
        "2 responses were never closed: their connections were taken and not given "
        "back:"
    )
    assert message.splitlines()[2] == (
        "  #3 GET https://example.test/  (no status, connection -)"
    )


# -- render_timeline -------------------------------------------------------------------


def test_render_timeline() -> None:
    a, b = two_sequential()
    text = render_timeline(make_recorder(a, b))
    assert text == dedent(
        """
        requests:
          #1 GET https://example.test/  (status 200, returned at 13.500 ms, closed at 12.500 ms, made at test_x.py:12)
          #2 GET https://example.test/  (status 200, returned at 20.500 ms, closed at 20.000 ms, made at test_x.py:12)
        timeline (ms since the first hook call):
              ms  req  conn  thread      hook
           0.000  #1   c1    MainThread  get_conn host_port='example.test:443'
           1.000  #1   c1    MainThread  dns_start host='example.test'
           2.000  #1   c1    MainThread  dns_done addrs=['127.0.0.1']
           3.000  #1   c1    MainThread  connect_start network='tcp' addr='127.0.0.1:443'
           4.000  #1   c1    MainThread  connect_done network='tcp' addr='127.0.0.1:443'
           5.000  #1   c1    MainThread  tls_handshake_start
           6.000  #1   c1    MainThread  tls_handshake_done state=<TLSv1.3 http/1.1>
           7.000  #1   c1    MainThread  got_conn reused=False was_idle=False
           8.000  #1   c1    MainThread  wrote_header_field x2: Host, Accept
          10.000  #1   c1    MainThread  wrote_headers
          11.000  #1   c1    MainThread  wrote_request
          12.000  #1   c1    MainThread  got_first_response_byte
          13.000  #1   c1    MainThread  put_idle_conn
          14.000  #2   c1    MainThread  get_conn host_port='example.test:443'
          15.000  #2   c1    MainThread  got_conn reused=True was_idle=True idle_time=0.25
          16.000  #2   c1    MainThread  wrote_header_field Host: example.test
          17.000  #2   c1    MainThread  wrote_headers
          18.000  #2   c1    MainThread  wrote_request
          19.000  #2   c1    MainThread  got_first_response_byte
          20.000  #2   c1    MainThread  put_idle_conn
        """  # noqa: E501
    )
    assert render_timeline([a, b]) == text
    assert render_timeline(sorted(a.events + b.events, key=lambda e: e.time)) == text
    full = render_timeline(a, collapse_header_fields=False)
    assert (
        "  8.000  #1   c1    MainThread  wrote_header_field Host: example.test" in full
    )
    assert "  9.000  #1   c1    MainThread  wrote_header_field Accept: */*" in full


def test_render_timeline_limits_and_edge_cases() -> None:
    request = make_request(["get_conn"] + ["wrote_headers"] * 100)
    short = render_timeline(request, max_events=20).splitlines()
    assert len(short) < 30
    assert "  ... (" in "\n".join(short)
    assert render_timeline(make_recorder()) == "(no request was recorded)"
    with pytest.raises(TypeError, match="needs a Recorder, RequestRecords or Events"):
        render_timeline([request.events[0], 42])  # type: ignore[arg-type]


def test_render_timeline_abbreviates_values_and_hides_addresses() -> None:
    class Conn:
        pass

    request = make_request(
        [
            ("got_conn", {"conn": Conn()}),
            ("get_conn", {"host_port": "x" * 100}),
            ("connect_done", {"err": ConnectionRefusedError("refused")}),
            ("got_1xx_response", {"code": 103, "headers": Conn()}),
        ]
    )
    lines = render_timeline(request).splitlines()[-4:]
    assert lines[0].endswith("got_conn reused=False was_idle=False")
    assert lines[1].endswith("get_conn host_port='" + "x" * 36 + "...")
    assert lines[2].endswith(
        "connect_done network='tcp' addr='127.0.0.1:443' "
        "err=ConnectionRefusedError('refused')"
    )
    assert " at 0x" not in lines[3]


def test_origin_is_shown_relative_to_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    inside = make_request(["get_conn"], origin=f"{tmp_path}/tests/test_a.py:3")
    outside = make_request(["get_conn"], id=2, origin="/elsewhere/test_b.py:4")
    text = render_timeline([inside, outside])
    assert "made at tests/test_a.py:3)" in text
    assert "made at /elsewhere/test_b.py:4)" in text


def test_importable_without_pytest() -> None:
    code = (
        "import sys; import pytest_httptrace.assertions; "
        "assert 'pytest' not in sys.modules and '_pytest' not in sys.modules, "
        "sorted(m for m in sys.modules if 'pytest' in m)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


# -- real traffic ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from pytest_httptrace.server import start_server

    with start_server() as srv:
        yield srv


@pytest.fixture
def recorder(server: Any) -> Iterator[Recorder]:
    server.reset()
    with Recorder.start() as rec:
        yield rec


def test_real_reuse_order_and_after_return(server: Any, recorder: Recorder) -> None:
    with server.client() as client:
        client.get(server.url("/"))
        client.get(server.url("/"))
        with client.stream("GET", server.url("/stream/3")) as response:
            response.read()
    first, second, streamed = recorder.requests
    assert_hook_sequence(
        first,
        [
            "get_conn",
            "dns_start",
            "dns_done",
            ...,
            "tls_handshake_done",
            hook("got_conn", reused=False),
            "wrote_headers",
            "wrote_request",
            "got_first_response_byte",
            "put_idle_conn",
        ],
    )
    assert_hook_sequence(second, ["get_conn", hook("got_conn", reused=True), ...])
    assert_hook_sequence(
        second, [..., hook("wrote_header_field", key="Host"), ..., "wrote_headers", ...]
    )
    assert_new_connection(first)
    assert_reused(second)
    assert_hook_order(first, "put_idle_conn", second, "get_conn")
    assert_shared_connection(first, second)
    assert_connections_opened(recorder, 1)
    assert_after_return(streamed, "put_idle_conn")
    assert_no_leaks(recorder)
    fails(assert_concurrent, first, second)
    assert "(after return)" in render_timeline(streamed)


def test_real_unclosed_stream_is_a_leak(server: Any, recorder: Recorder) -> None:
    with server.client() as client:
        request = client.build_request("GET", server.url("/stream/2"))
        response = client.send(request, stream=True)  # the line named below
        line = sys._getframe().f_lineno - 1
        try:
            (leaked,) = find_leaks(recorder)
            message = fails(assert_no_leaks, recorder)
        finally:
            response.close()
    assert leaked.origin is not None and leaked.origin.endswith(
        f"test_assertions.py:{line}"
    )
    assert "/stream/2  (status 200, connection c1, made at " in message
    assert message.splitlines()[1].endswith(f"test_assertions.py:{line})")
    assert_no_leaks(recorder)


def test_real_response_closed_undrained_says_put_idle_conn_never_ran(
    server: Any, recorder: Recorder
) -> None:
    with (
        server.client() as client,
        client.stream("GET", server.url("/stream/5")) as response,
    ):
        assert response.status_code == 200  # closed without reading the body
    [request] = recorder.requests
    message = fails(
        assert_hook_sequence, request, [..., "got_first_response_byte", "put_idle_conn"]
    )
    lines = message.splitlines()
    assert lines[0].endswith("do not match the pattern ('put_idle_conn' never ran):")
    [fate] = [ln for ln in lines if ln.startswith("put_idle_conn never ran: ")]
    assert re.fullmatch(
        r"put_idle_conn never ran: the response was closed at [\d.]+ ms without going "
        r"back to the pool; it ended closed early \(its body not read to the end\); "
        r"its connection c1 was closed by the client at [\d.]+ ms\.",
        fate,
    ), fate


def _why(message: str) -> str:
    [line] = [ln for ln in message.splitlines() if ln.startswith("why: ")]
    return re.sub(r"\d+\.\d+ ms", "T ms", line)


def test_real_reuse_verdicts(server: Any, recorder: Recorder) -> None:
    """Issue #13 item 7: the sentence says why there was no reuse, and the message
    shows the earlier request."""
    # A client per request: the connection was closed with its client.
    for _ in range(2):
        with server.client() as client:
            client.get(server.url("/"))
    first, second = recorder.requests
    message = fails(assert_reused, second, recorder)
    assert _why(message) == (
        "why: connection c1 of the earlier request #1 went back to the pool at T ms "
        "and was closed with its client at T ms, before #2 started at T ms: the "
        "client was closed (one client per request?)."
    )
    assert (
        f"\n  {_req_line(first)}" in message and f"\n  {_req_line(second)}" in message
    )

    # The server said `Connection: close`.
    recorder.clear()
    with server.client() as client:
        client.get(server.url("/close"))
        client.get(server.url("/close"))
    message = fails(assert_reused, recorder.requests[1], recorder)
    assert _why(message) == (
        "why: connection c1 of the earlier request #1 was closed by the server "
        "(Connection: close) at T ms, before #2 started at T ms."
    )

    # The earlier response was never closed: its connection was still taken.
    recorder.clear()
    with server.client() as client:
        leaked = client.send(client.build_request("GET", server.url("/")), stream=True)
        client.get(server.url("/"))
        message = fails(assert_reused, recorder.requests[1], recorder)
        leaked.close()
    assert _why(message) == (
        "why: the response of the earlier request #1 was not read or closed, so "
        "connection c1 was still taken when #2 started at T ms: close each response "
        "(`with client.stream(...)`) before the next request."
    )

    # The earlier response was still being read: its connection was in use.
    recorder.clear()
    with (
        server.client() as client,
        client.stream("GET", server.url("/stream/2")) as streaming,
    ):
        client.get(server.url("/"))
        streaming.read()
    message = fails(assert_reused, recorder.requests[1], recorder)
    assert _why(message) == (
        "why: connection c1 was in use by the earlier request #1 (until T ms) when #2 "
        "started at T ms: an HTTP/1.1 connection serves one request at a time."
    )

    # Another client's connection was idle in its pool.
    recorder.clear()
    with server.client() as one, server.client() as other:
        one.get(server.url("/"))
        other.get(server.url("/"))
        message = fails(assert_reused, recorder.requests[1], recorder)
    assert _why(message) == (
        "why: connection c1 of the earlier request #1 was idle in the pool from T ms "
        "and still open when #2 started at T ms: #2 came from another client (each "
        "client has its own pool)."
    )


def _req_line(request: RequestRecord) -> str:
    return f"#{request.id} {request.method} {request.url}  (status {request.status}"


def test_real_cache_hit_opens_no_connection(server: Any, recorder: Recorder) -> None:
    cache: dict[str, bytes] = {}

    def fetch(client: Any, url: str) -> bytes:
        if url not in cache:
            cache[url] = client.get(url).content
        return cache[url]

    with server.client() as client:
        fetch(client, server.url("/"))
        assert_connections_opened(recorder, 1)
        recorder.clear()
        assert fetch(client, server.url("/")) == b"hello"
    assert_connections_opened(recorder, 0)


def _rendezvous(n: int) -> Any:
    """An ASGI route answering only once ``n`` requests are waiting on it, so that
    they are certainly all in flight at once."""
    arrived = 0
    everyone: asyncio.Event | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal arrived, everyone
        if everyone is None:
            everyone = asyncio.Event()
        arrived += 1
        if arrived >= n:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), 20)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_real_50_threads_in_flight_at_once(server: Any, recorder: Recorder) -> None:
    server.add_route("/together", _rendezvous(50))
    with server.client() as client, ThreadPoolExecutor(50) as pool:
        barrier = threading.Barrier(50)

        def get(i: int) -> int:
            barrier.wait(10)
            return int(client.get(server.url(f"/together?i={i}")).status_code)

        assert list(pool.map(get, range(50))) == [200] * 50
    requests = recorder.requests
    assert len(requests) == 50
    for a, b in itertools.pairwise(requests):
        assert_concurrent(a, b)
    assert_concurrent(requests[0], requests[-1])
    assert_connections_opened(recorder, 50)  # HTTP/1.1: one connection each
    assert_max_connections(recorder, 50, state="in_use")
    assert fails(assert_max_connections, recorder, 49, state="in_use").startswith(
        "expected at most 49 connections in use at once, 50 were in use at "
    )
    assert_no_leaks(recorder)


def test_real_50_tasks_multiplexed_on_one_http2_connection(
    server: Any, recorder: Recorder
) -> None:
    server.add_route("/together", _rendezvous(50))

    async def main() -> list[int]:
        async with server.async_client(http2=True) as client:
            responses = await asyncio.gather(
                *(client.get(server.url(f"/together?i={i}")) for i in range(50))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(main()) == [200] * 50
    requests = recorder.requests
    assert len(requests) == 50
    assert all(e.task is not None for r in requests for e in r.events)
    for a, b in itertools.pairwise(requests):
        assert_concurrent(a, b)
        assert_shared_connection(a, b)
    assert_connections_opened(recorder, 1)
    assert_max_connections(recorder, 1)
    assert_max_connections(recorder, 1, state="in_use")
    assert_no_leaks(recorder)


def test_render_timeline_legend_names_the_requests_shown() -> None:
    requests = [
        make_request(["get_conn", "got_conn", "wrote_headers"], id=i, start=i)
        for i in range(1, 31)
    ]
    lines = render_timeline(requests, max_events=12).splitlines()
    legend = lines[1 : lines.index("timeline (ms since the first hook call):")]
    assert [line.split()[0] for line in legend] == ["#1", "#2", "#30", "..."]
    assert legend[-1] == "  ... and 27 more"
    # Header fields of different requests are not folded together.
    a = make_request([("wrote_header_field", {"key": "A", "values": ["1"]})] * 2)
    b = make_request(
        [("wrote_header_field", {"key": "B", "values": ["2"]})], id=2, start=0.0015
    )
    text = render_timeline([a, b])
    assert "#1   -     MainThread  wrote_header_field x2: A, A" in text
    assert "#2   -     MainThread  wrote_header_field B: 2" in text


# -- phases (one definition for assertions, waterfall, report, leak check) -------------


def _phase_table(record: RequestRecord) -> list[tuple[str, float, float, bool]]:
    return [
        (p.name, round(p.start * 1000, 3), round(p.end * 1000, 3), p.incomplete)
        for p in record.phases
    ]


def test_phases_of_a_request_on_a_new_connection() -> None:
    record = new_request()
    assert _phase_table(record) == [
        ("blocked", 0.0, 1.0, False),
        ("dns", 1.0, 2.0, False),
        ("connect", 3.0, 4.0, False),
        ("tls", 5.0, 6.0, False),
        ("send", 7.0, 11.0, False),
        ("wait", 11.0, 12.0, False),
        ("receive", 12.0, 12.5, False),
    ]
    from pytest_httptrace import PHASE_NAMES, Phase, phases

    assert [p.name for p in phases(record)] == list(PHASE_NAMES)
    assert all(isinstance(p, Phase) for p in record.phases)
    # Until the last hook call, put_idle_conn:
    assert record.in_flight == pytest.approx((0.0, 0.013))
    assert record.released_at == 0.0125 and not record.leaked


def test_phases_blocked_is_the_whole_pool_wait_when_nothing_was_dialed() -> None:
    record = make_request(REUSED, step=0.002, returned=0.011, closed=0.011)
    assert _phase_table(record) == [
        ("blocked", 0.0, 2.0, False),
        ("send", 2.0, 8.0, False),
        ("wait", 8.0, 10.0, False),
        ("receive", 10.0, 11.0, False),
    ]


def test_a_phase_cut_short_ends_when_the_request_ended() -> None:
    record = make_request(
        ["get_conn", "dns_start", "dns_done", "connect_start"],
        status=None,
        error=OSError("refused"),
        returned=0.005,
    )
    assert _phase_table(record) == [
        ("blocked", 0.0, 1.0, False),
        ("dns", 1.0, 2.0, False),
        ("connect", 3.0, 5.0, True),
    ]
    # A failed call that never got a connection holds none: released when it ended.
    assert record.released_at == 0.003 and not record.leaked


def test_a_leak_is_never_released() -> None:
    record = make_request(REUSED[:-1], returned=0.006)
    assert record.leaked and record.released_at is None
    assert find_leaks([record]) == [record]
    assert record.phases[-1].name == "receive"
    assert record.phases[-1].end == 0.006  # never closed: until the call returned


def test_assertions_waterfall_and_report_share_one_in_flight_interval() -> None:
    from pytest_httptrace import assertions, waterfall

    record = new_request()
    record._traced.started_at = -0.0005  # type: ignore[union-attr]  # before get_conn
    data = waterfall.request_data(record)
    assert assertions._interval(record) == record.in_flight
    assert record.in_flight == pytest.approx((-0.0005, 0.013))
    assert waterfall.request_bounds(data) == record.in_flight
    assert waterfall.is_leaked(data) is record.leaked is False
    spans = [(s.name, s.start, s.end) for s in waterfall.request_spans(data)]
    names = {"receive": "transfer"}
    assert spans == [
        (names.get(p.name, p.name), p.start, p.end)
        for p in record.phases
        if p.name != "blocked"
    ]


def test_assert_phases_passes_within_its_budgets() -> None:
    from pytest_httptrace import assert_phases

    record = new_request()
    assert_phases(record, wait=0.002, send=(0.0039, 0.0041), dns=(0.0005, None))
    assert_phases(make_request(REUSED), dns=0.05)  # not dialed: took 0 s


def test_assert_phases_failure_text() -> None:
    from pytest_httptrace import assert_phases

    record = new_request()
    message = fails(assert_phases, record, wait=0.0005, dns=(0.0015, 1), blocked=1)
    assert message.split("\n\n")[0] == dedent(
        """
        request #1 GET https://example.test/ is outside its budget in 2 phases:
          wait     1.00 ms, expected at most 0.50 ms
          dns      1.00 ms, expected between 1.50 ms and 1000 ms
        phases (ms since the first hook call):
          blocked  0.000 ms to 1.000 ms  (1.00 ms)
          dns      1.000 ms to 2.000 ms  (1.00 ms)
          connect  3.000 ms to 4.000 ms  (1.00 ms)
          tls      5.000 ms to 6.000 ms  (1.00 ms)
          send     7.000 ms to 11.000 ms  (4.00 ms)
          wait     11.000 ms to 12.000 ms  (1.00 ms)
          receive  12.000 ms to 12.500 ms  (0.50 ms)
        """
    )
    assert message.split("\n\n")[1] == render_timeline(record)
    absent = fails(assert_phases, make_request(REUSED), tls=(0.001, None))
    assert absent.splitlines()[1] == (
        "  tls      did not happen, expected at least 1.00 ms"
    )
    cut = make_request(
        ["get_conn", "connect_start"], status=None, error=OSError(), returned=0.004
    )
    assert fails(assert_phases, cut, connect=0.001).splitlines()[4] == (
        "  connect  1.000 ms to 4.000 ms  (3.00 ms)  (cut short)"
    )


@pytest.mark.parametrize(
    ("budgets", "error", "text"),
    [
        ({}, TypeError, "needs at least one budget"),
        ({"ttfb": 1}, ValueError, "unknown phase 'ttfb'. Valid phases: blocked, dns,"),
        ({"wiat": 1}, ValueError, "unknown phase 'wiat'. Did you mean 'wait'?"),
        ({"transfer": 1}, ValueError, "Valid phases: blocked, dns, connect, tls, send"),
        ({"wait": "1s"}, TypeError, "the budget for 'wait' must be seconds"),
        ({"wait": True}, TypeError, "not True"),
        ({"wait": (1, 2, 3)}, TypeError, "a (min, max) pair"),
        ({"wait": ("0", 1)}, TypeError, "must be seconds"),
        ({"wait": None}, TypeError, "sets no bound"),
        ({"wait": (None, None)}, TypeError, "sets no bound"),
        ({"wait": -1}, ValueError, "finite seconds >= 0"),
        ({"wait": math.nan}, ValueError, "finite seconds >= 0"),
        ({"wait": (2, 1)}, ValueError, "min > max"),
    ],
)
def test_assert_phases_rejects_bad_budgets(
    budgets: dict[str, Any], error: type[Exception], text: str
) -> None:
    from pytest_httptrace import assert_phases

    with pytest.raises(error) as excinfo:
        assert_phases(new_request(), **budgets)
    assert text in str(excinfo.value)


def test_assert_phases_takes_one_request() -> None:
    from pytest_httptrace import assert_phases

    with pytest.raises(TypeError, match=r"assert_phases\(\) takes one request"):
        assert_phases(make_recorder(new_request()), wait=1)  # type: ignore[arg-type]


def test_real_phases_wait_covers_the_server_delay(
    server: Any, recorder: Recorder
) -> None:
    from pytest_httptrace import assert_phases

    with server.client() as client:
        client.get(server.url("/delay/0.2"))
        client.get(server.url("/"))
    delayed, fast = recorder.requests
    # The server's 0.2 s less a margin: wrote_request is stamped once the write
    # returned, and a loaded machine can pause the client in between.
    assert_phases(delayed, wait=(0.15, None))
    assert [p.name for p in delayed.phases] == [
        "blocked", "dns", "connect", "tls", "send", "wait", "receive"
    ]  # fmt: skip
    assert [p.name for p in fast.phases] == ["blocked", "send", "wait", "receive"]
    message = fails(assert_phases, delayed, wait=0.1)
    assert message.startswith(
        f"request #1 GET {server.url('/delay/0.2')} is outside its budget in 1 phase:"
    )
    assert "\ntimeline (ms since the first hook call):\n" in message


def test_real_phases_through_requests(server: Any, recorder: Recorder) -> None:
    pytest.importorskip("requests")
    from pytest_httptrace import assert_phases

    with server.requests_session() as session:
        session.get(server.url("/delay/0.2")).close()
    (request,) = recorder.requests
    assert_phases(request, wait=(0.15, None), receive=(0, None))  # margin: see above
    fails(assert_phases, request, wait=(0, 0.1))
    assert not request.leaked and request.released_at is not None


def test_the_split_keeps_every_import_path() -> None:
    """The assertions package re-exports what the single module had: the public names,
    and the private ones other modules, the tests and the benchmarks import."""
    import pytest_httptrace
    from pytest_httptrace import assertions

    for name in assertions.__all__:
        assert getattr(pytest_httptrace, name) is getattr(assertions, name), name
    for name in (
        "OPT_IN_HOOKS",
        "Source",
        "Budget",
        "_conn_label",
        "_got_conn",
        "_interval",
        "_is_leak",
        "_match",
        "_ms",
        "_nothing_recorded",
        "_requests_not_shown",
    ):
        assert hasattr(assertions, name), name


def test_timeline_waterfall_and_report_show_hook_arguments_alike() -> None:
    """One convention for hook arguments (`_argtext`): the connection object only as
    its number, ``err`` only when set, ``idle_time`` only for an idle connection,
    ``coalesced`` only when true."""
    import html

    from pytest_httptrace.report import html_report
    from pytest_httptrace.waterfall import render_waterfall, request_data

    record = new_request(conn=make_connection(3))
    data = request_data(record)
    waterfall = render_waterfall([data])
    page = html_report([("t.py::test_x", [data])])
    page = html.unescape(re.sub(r"<[^>]+>", " ", page))  # the rows' cells
    timeline = render_timeline(record)
    texts = [" ".join(t.split()) for t in (waterfall, page, timeline)]
    for text in texts:
        assert "got_conn reused=False was_idle=False" in text.replace("conn=#3 ", "")
        assert "err=" not in text and "idle_time" not in text
        assert "coalesced" not in text
        assert "dns_done addrs=['127.0.0.1']" in text
    assert all("got_conn conn=#3 reused=False" in t for t in texts[:2])


def test_real_phases_through_aiohttp(server: Any, recorder: Recorder) -> None:
    pytest.importorskip("aiohttp")
    from pytest_httptrace import assert_phases

    async def main() -> None:
        async with (
            server.aiohttp_session() as session,
            session.get(server.url("/delay/0.2")) as response,
        ):
            await response.read()

    asyncio.run(main())
    (request,) = recorder.requests
    assert_phases(request, wait=(0.15, None))  # the margin: see above
    fails(assert_phases, request, wait=0.1)
    assert not request.leaked and request.released_at is not None


def test_a_matcher_whose_hook_ran_with_other_arguments_says_how_it_ran() -> None:
    # "never ran" alone would point at the wrong thing: got_conn did run.
    from pytest_httptrace.assertions import assert_hook_sequence, hook
    from pytest_httptrace.recorder import make_event

    events = [
        make_event("get_conn", host_port="a:443"),
        make_event("got_conn", reused=False, was_idle=False, idle_time=0.0),
        make_event("got_conn", reused=False, was_idle=False, idle_time=0.0),
    ]
    with pytest.raises(AssertionError) as info:
        assert_hook_sequence(events, [..., hook("got_conn", reused=True)])
    lines = str(info.value).splitlines()
    at = lines.index(
        "got_conn ran, not as hook('got_conn', reused=True): "
        "[2] got_conn reused=False was_idle=False (the last of 2 calls)"
    )
    assert lines[at + 1] == "  reused: expected True, got False"
    with pytest.raises(AssertionError) as plain:  # a name, not a matcher: no such line
        assert_hook_sequence(events, [..., "put_idle_conn"])
    assert " ran, not as " not in str(plain.value)
