"""`assert_hook_sequence` over long recordings (10 000 requests, 100 000 hook calls):
a passing pattern describes no hook call, a failing one has a message of bounded size
that still says where the match diverged. Sizes and counts are bounded here, not time
(that is `benchmarks/scale.py`).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_assertions import make_connection, make_recorder, make_request

from pytest_httptrace.assertions import OPT_IN_HOOKS, PatternItem, _match
from pytest_httptrace.assertions import assert_hook_sequence as check
from pytest_httptrace.recorder import Event, Recorder

REQUESTS = 10_000


class Shown:
    """An argument value that counts how often a message showed it (its repr)."""

    count = 0

    def __repr__(self) -> str:
        Shown.count += 1
        return "'example.test:443'"


def keepalive_get() -> list[Any]:
    """The 10 hooks of a keep-alive GET, 6 of them compared by default."""
    return [
        ("get_conn", {"host_port": Shown()}),
        ("got_conn", {"reused": True, "was_idle": True, "idle_time": 0.001}),
        *[
            ("wrote_header_field", {"key": key, "values": ["x"]})
            for key in ("Host", "Accept", "Accept-Encoding", "User-Agent")
        ],
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "put_idle_conn",
    ]


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    conn = make_connection(1)
    hooks = keepalive_get()
    step = 1e-5
    return make_recorder(
        *(
            make_request(
                hooks, id=i + 1, conn=conn, start=i * len(hooks) * step, step=step
            )
            for i in range(REQUESTS)
        )
    )


@pytest.fixture
def compared(recorder: Recorder) -> list[Event]:
    """The events `assert_hook_sequence` compares (no header fields)."""
    Shown.count = 0
    return [e for e in recorder.events if e.hook not in OPT_IN_HOOKS]


@pytest.fixture
def exact(compared: list[Event]) -> list[PatternItem]:
    """The exact pattern: one hook name per compared event."""
    return [e.hook for e in compared]


def test_the_recording_is_large(recorder: Recorder) -> None:
    assert len(recorder.events) == 10 * REQUESTS == 100_000


@pytest.mark.parametrize("kind", ["exact", "wildcard", "per request"])
def test_a_passing_pattern_describes_no_hook_call(
    recorder: Recorder, compared: list[Event], exact: list[PatternItem], kind: str
) -> None:
    patterns: dict[str, list[PatternItem]] = {
        "exact": exact,
        "wildcard": ["get_conn", ..., "got_conn", ..., "put_idle_conn"],
        "per request": ["get_conn", "got_conn", ...] * 100 + [..., "put_idle_conn"],
    }
    pattern = patterns[kind]
    check(recorder, pattern)
    assert Shown.count == 0  # no transcript row, no text
    # What a pass costs is the comparisons: one per event for the exact pattern.
    outcome = _match(pattern, compared, log=False)
    assert outcome.ok
    assert outcome.rows == []
    if kind == "exact":
        assert outcome.comparisons == len(compared)
