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
    assert len(outcome.rows) == 0
    if kind == "exact":
        assert outcome.comparisons == len(compared)


# -- a failing pattern: a message of bounded size ------------------------------------

#: What a failure message over 100 000 hook calls may take: the transcript's first 10
#: and last 30 rows, the timeline's 40 lines and a legend of 20 requests. (Without
#: windows: 4 MB.)
MAX_MESSAGE = 20_000


def failure(source: object, pattern: list[PatternItem]) -> str:
    with pytest.raises(AssertionError) as excinfo:
        check(source, pattern)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert len(message) <= MAX_MESSAGE
    transcript = message.split("\n\n")[0].splitlines()
    rows = [line for line in transcript if line.startswith("  ") and ":" in line[:12]]
    assert len(rows) <= 40
    timeline = message.split("\ntimeline (ms since the first hook call):\n")[1]
    assert len(timeline.splitlines()) <= 1 + 41 + 2  # header, lines, gaps
    assert Shown.count <= 100  # only the hooks shown were described
    return message


def test_diverging_at_the_last_hook(
    recorder: Recorder, exact: list[PatternItem]
) -> None:
    last = len(exact) - 1
    message = failure(recorder, [*exact[:-1], "got_100_continue"])
    assert message.startswith(
        "hooks of the 10000 requests of the recorder (all their hooks, in time order) "
        f"do not match the pattern (diverged at [{last}] #10000 put_idle_conn):\n"
        "  matched: 'get_conn'                 [0] #1 get_conn "
        "host_port='example.test:443'\n"
    )
    assert f"\n  ... ({last - 40 + 1} more rows: hooks [10] to [{last - 30}])\n" in (
        message
    )
    assert (
        f"  matched: 'got_first_response_byte'  [{last - 1}] #10000 "
        "got_first_response_byte\n"
        f"  nomatch: 'got_100_continue'         [{last}] #10000 put_idle_conn\n"
        f"diverged at [{last}] #10000 put_idle_conn: expected 'got_100_continue'\n"
        "remains unmatched: 'got_100_continue'\n"
    ) in message
    # The timeline shows the lines around the divergence, with their positions.
    assert f"\n  [{last}] " in message.split("timeline")[1]
    # The legend names the requests of the lines shown.
    assert "\n  #10000 GET https://example.test/  (" in message
    assert "\n  ... and 9996 more\ntimeline" in message


def test_a_hook_that_never_ran_after_a_long_match(
    recorder: Recorder, exact: list[PatternItem]
) -> None:
    message = failure(recorder, [*exact[:30_000], ..., "got_100_continue"])
    assert "do not match the pattern ('got_100_continue' never ran):\n" in message
    assert (
        "  ... (29962 more rows: hooks [10] to [29971])\n"
        "  matched: 'wrote_headers'            [29972] #4996 wrote_headers\n"
    ) in message
    assert (
        "  skipped: ...                        [30000] #5001 get_conn .. "
        "[59999] #10000 put_idle_conn (30000 hooks)\n"
        "  nomatch: 'got_100_continue'         (end of the recording)\n"
        "diverged at the end of the recording: 'got_100_continue' never ran after "
        "[59999] #10000 put_idle_conn\n"
    ) in message


def test_a_long_pattern_diverging_at_once_lists_some_of_what_remains(
    recorder: Recorder, exact: list[PatternItem]
) -> None:
    pattern = ["got_conn", *exact[1:]]
    message = failure(recorder, pattern)
    items = ", ".join(repr(item) for item in pattern[:20])
    assert (
        "  nomatch: 'got_conn'  [0] #1 get_conn host_port='example.test:443'\n"
        "diverged at [0] #1 get_conn: expected 'got_conn'\n"
        f"remains unmatched: {items}, ... ({len(pattern) - 20} more)\n"
        "hint: 'got_conn' matches [1] #1 got_conn; to skip the 1 hook before it, put "
        "... in front of it in the pattern.\n"
    ) in message


def test_the_closest_attempt_of_a_long_segment(
    recorder: Recorder, exact: list[PatternItem]
) -> None:
    segment = [*exact[6:30], "got_100_continue"]
    message = failure(recorder, ["get_conn", ..., *segment, ...])
    names = ", ".join(repr(item) for item in segment[:20])
    assert (
        "diverged at [30] #6 get_conn: expected 'got_100_continue'\n"
        "remains unmatched: 'got_100_continue', ...\n"
        f"hint: no position from [1] on matches {names}, ... (5 more) in a row; the "
        "closest attempt is shown.\n"
    ) in message


def test_more_hooks_than_a_long_pattern(
    recorder: Recorder, exact: list[PatternItem]
) -> None:
    message = failure(recorder, exact[:-6])
    assert "do not match the pattern (6 more hooks than the pattern):\n" in message
    assert "  ... (" in message
    assert message.count("\n      and: ") == 5


def test_one_request_with_100k_hooks_says_what_happened_instead() -> None:
    interim = ("got_1xx_response", {"code": 103, "headers": {"link": "</a.css>"}})
    hooks: list[Any] = [
        ("get_conn", {"host_port": Shown()}),
        "got_conn",
        "wrote_headers",
        "wrote_request",
        *[interim] * 99_995,
        "got_first_response_byte",
    ]
    record = make_request(
        hooks, conn=make_connection(1), step=1e-6, returned=0.2, closed=0.2
    )
    Shown.count = 0
    names = [h if isinstance(h, str) else h[0] for h in hooks]
    message = failure(record, [*names, "put_idle_conn"])
    assert len(record.events) == 100_000
    assert (
        "diverged at the end of the recording: expected 'put_idle_conn' after "
        "[99999] got_first_response_byte\n"
        "remains unmatched: 'put_idle_conn'\n"
    ) in message
    message = failure(record, [*names[:50_000], ..., "put_idle_conn"])
    assert (
        "  skipped: ...                 [50000] got_1xx_response .. [99999] "
        "got_first_response_byte (50000 hooks)\n"
        "  nomatch: 'put_idle_conn'     (end of the recording)\n"
        "diverged at the end of the recording: 'put_idle_conn' never ran after "
        "[99999] got_first_response_byte\n"
        "remains unmatched: 'put_idle_conn'\n"
        "put_idle_conn never ran: the response was closed at 200.000 ms without "
        "going back to the pool.\n"
    ) in message


# -- small transcripts are shown whole ------------------------------------------------


@pytest.mark.parametrize(("hooks", "gap"), [(40, None), (41, "1 more row")])
def test_a_transcript_is_windowed_past_40_rows(hooks: int, gap: str | None) -> None:
    record = make_request(["get_conn", *["wrote_headers"] * (hooks - 1)])
    pattern: list[PatternItem] = ["get_conn", *["wrote_headers"] * (hooks - 2)]
    message = failure(record, [*pattern, "wrote_request"])  # a row per hook
    transcript = message.split("\ndiverged")[0]
    if gap is None:
        assert "  ... (" not in transcript
        assert transcript.count("\n  matched: ") == hooks - 1
    else:
        assert f"\n  ... ({gap}: hooks [10] to [10])\n" in transcript
        assert transcript.count("\n  matched: ") == hooks - 2


def test_a_matcher_that_changes_its_answer_fails_and_says_so() -> None:
    from pytest_httptrace import assert_hook_sequence, hook
    from pytest_httptrace.recorder import make_event

    answers = iter([False, True])
    events = [make_event("get_conn", host_port="a:443")]
    with pytest.raises(AssertionError, match="answered differently"):
        assert_hook_sequence(
            events, [hook("get_conn", host_port=lambda v: next(answers))]
        )
