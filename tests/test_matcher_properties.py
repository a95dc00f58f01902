"""Property tests of the pattern matcher behind `assert_hook_sequence` (hypothesis).

Recorded sequences and patterns are drawn over a small alphabet of hooks, some with a
boolean argument, so that patterns match often enough to be interesting. The
reference is `fnmatch`: every event becomes one letter, a hook name a character
class (any value of its argument), a ``hook(...)`` matcher one letter and ``...`` a
``*``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_httptrace.assertions import (
    HookMatcher,
    PatternItem,
    _match,
    assert_hook_sequence,
    hook,
)
from pytest_httptrace.recorder import Event, make_event

FLAGGED = {"got_conn": "reused", "dns_done": "coalesced"}
HOOKS = ("get_conn", "got_conn", "dns_done", "wrote_headers", "wrote_request")
ABSENT = "got_100_continue"  # never in a drawn recording

Token = tuple[str, bool]
LETTERS: dict[Token, str] = {}
for _hook in HOOKS:
    for _flag in (False, True) if _hook in FLAGGED else (False,):
        LETTERS[(_hook, _flag)] = chr(ord("a") + len(LETTERS))

SETTINGS = settings(max_examples=150, deadline=None)


def _token(hook_name: str, flag: bool) -> Token:
    return (hook_name, flag and hook_name in FLAGGED)


tokens_st = st.lists(
    st.builds(_token, st.sampled_from(HOOKS), st.booleans()), max_size=12
)
matcher_st = st.builds(
    lambda name, flag: hook(name, **{FLAGGED[name]: flag}),
    st.sampled_from(sorted(FLAGGED)),
    st.booleans(),
)
item_st: st.SearchStrategy[PatternItem] = st.one_of(
    st.just(...), st.sampled_from(HOOKS), matcher_st
)
pattern_st = st.lists(item_st, max_size=8)


def events(tokens: Sequence[Token]) -> list[Event]:
    out = []
    for i, (name, flag) in enumerate(tokens):
        args: dict[str, Any] = {FLAGGED[name]: flag} if name in FLAGGED else {}
        out.append(make_event(name, time=float(i), index=i, **args))  # type: ignore[arg-type]
    return out


def letters(tokens: Sequence[Token]) -> str:
    return "".join(LETTERS[t] for t in tokens)


def glob(pattern: Sequence[PatternItem]) -> str:
    out = []
    for item in pattern:
        if item is ...:
            out.append("*")
        elif isinstance(item, HookMatcher):
            ((_, flag),) = item.matchers.items()
            out.append(LETTERS[(item.name, bool(flag))])
        else:
            assert isinstance(item, str)
            group = [v for (name, _), v in LETTERS.items() if name == item]
            if not group:  # a hook outside the alphabet: matches no letter
                group = ["Z" if item != "wrote_header_field" else "z"]
            out.append(group[0] if len(group) == 1 else f"[{''.join(group)}]")
    return "".join(out)


def exact(
    tokens: Sequence[Token], *, matchers: Sequence[bool] = ()
) -> list[PatternItem]:
    """The star-free pattern of a recording: names, or matchers where asked."""
    out: list[PatternItem] = []
    for i, (name, flag) in enumerate(tokens):
        use_matcher = i < len(matchers) and matchers[i] and name in FLAGGED
        out.append(hook(name, **{FLAGGED[name]: flag}) if use_matcher else name)
    return out


@st.composite
def recording_and_pattern(draw: st.DrawFn) -> tuple[list[Token], list[PatternItem]]:
    """A recording and a pattern built from it: each hook as its name or a matcher,
    some runs (possibly empty) replaced by ``...``."""
    tokens = draw(tokens_st)
    matchers = draw(st.lists(st.booleans(), min_size=len(tokens), max_size=len(tokens)))
    items = exact(tokens, matchers=matchers)
    pattern: list[PatternItem] = []
    i = 0
    while i <= len(items):
        if draw(st.booleans()):  # a `...` here, swallowing 0..3 items
            pattern.append(...)
            i += draw(st.integers(0, 3))
        if i < len(items):
            pattern.append(items[i])
        i += 1
    return tokens, pattern


def check(tokens: Sequence[Token], pattern: Sequence[PatternItem]) -> bool:
    evs = events(tokens)
    outcome = _match(pattern, evs)
    n, m = len(evs), len(pattern)
    assert outcome.comparisons <= (n + 1) * (m + 1), (outcome.comparisons, n, m)
    return outcome.ok


# -- a pattern built from a recording matches it -------------------------------------


@SETTINGS
@given(recording_and_pattern())
def test_a_pattern_built_from_the_recording_matches_it(
    case: tuple[list[Token], list[PatternItem]],
) -> None:
    tokens, pattern = case
    assert check(tokens, pattern)
    if tokens:
        assert_hook_sequence(events(tokens), pattern)


# -- removing, reordering or renaming an item never matches ----------------------------


@SETTINGS
@given(tokens_st.filter(bool), st.data())
def test_removing_an_item_never_matches(
    tokens: list[Token], data: st.DataObject
) -> None:
    matchers = data.draw(st.lists(st.booleans(), max_size=len(tokens)))
    pattern = exact(tokens, matchers=matchers)
    assert check(tokens, pattern)
    i = data.draw(st.integers(0, len(pattern) - 1))
    del pattern[i]
    assert not check(tokens, pattern)
    with pytest.raises(AssertionError):
        assert_hook_sequence(events(tokens), pattern)


@SETTINGS
@given(tokens_st.filter(bool), st.data())
def test_renaming_an_item_never_matches(
    tokens: list[Token], data: st.DataObject
) -> None:
    pattern = exact(tokens)
    i = data.draw(st.integers(0, len(pattern) - 1))
    other = data.draw(st.sampled_from([h for h in HOOKS if h != tokens[i][0]]))
    pattern[i] = other
    assert not check(tokens, pattern)


@SETTINGS
@given(tokens_st.filter(lambda t: any(name in FLAGGED for name, _ in t)), st.data())
def test_flipping_an_argument_never_matches(
    tokens: list[Token], data: st.DataObject
) -> None:
    flagged = [i for i, (name, _) in enumerate(tokens) if name in FLAGGED]
    i = data.draw(st.sampled_from(flagged))
    pattern = exact(tokens, matchers=[True] * len(tokens))
    name, flag = tokens[i]
    pattern[i] = hook(name, **{FLAGGED[name]: not flag})
    assert not check(tokens, pattern)


@SETTINGS
@given(recording_and_pattern())
def test_renaming_an_item_to_an_absent_hook_never_matches_even_with_skips(
    case: tuple[list[Token], list[PatternItem]],
) -> None:
    tokens, pattern = case
    named = [i for i, item in enumerate(pattern) if item is not ...]
    assume(named)
    pattern[named[len(named) // 2]] = ABSENT
    assert not check(tokens, pattern)


@SETTINGS
@given(tokens_st.filter(lambda t: len(t) >= 2), st.data())
def test_reordering_items_never_matches(
    tokens: list[Token], data: st.DataObject
) -> None:
    pattern = exact(tokens)
    i = data.draw(st.integers(0, len(tokens) - 1))
    j = data.draw(st.integers(0, len(tokens) - 1))
    # Move item i to position j; repeated names can make that the same sequence.
    moved = list(pattern)
    moved.insert(j, moved.pop(i))
    assume([tokens[k][0] for k in range(len(tokens))] != moved)
    assert not check(tokens, moved)
    swapped = list(pattern)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    if swapped != pattern:
        assert not check(tokens, swapped)


# -- `...` behaves like a glob's `*` ---------------------------------------------------


@SETTINGS
@given(tokens_st, pattern_st)
def test_agrees_with_fnmatch_on_random_patterns(
    tokens: list[Token], pattern: list[PatternItem]
) -> None:
    assert check(tokens, pattern) == fnmatchcase(letters(tokens), glob(pattern))


@SETTINGS
@given(recording_and_pattern(), st.data())
def test_agrees_with_fnmatch_on_near_misses(
    case: tuple[list[Token], list[PatternItem]], data: st.DataObject
) -> None:
    tokens, pattern = case
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(pattern)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert" or not pattern:
            pattern.insert(where, data.draw(item_st))
        elif action == "delete":
            del pattern[min(where, len(pattern) - 1)]
        else:
            pattern[min(where, len(pattern) - 1)] = data.draw(item_st)
    assert check(tokens, pattern) == fnmatchcase(letters(tokens), glob(pattern))


@SETTINGS
@given(tokens_st, pattern_st, st.data())
def test_repeated_ellipses_are_one(
    tokens: list[Token], pattern: list[PatternItem], data: st.DataObject
) -> None:
    doubled: list[PatternItem] = []
    for item in pattern:
        doubled.append(item)
        if item is ...:
            doubled.extend([...] * data.draw(st.integers(0, 2)))
    assert check(tokens, doubled) == check(tokens, pattern)


@SETTINGS
@given(tokens_st.filter(bool), pattern_st)
def test_public_api_agrees_with_the_matcher(
    tokens: list[Token], pattern: list[PatternItem]
) -> None:
    ok = check(tokens, pattern)
    if ok:
        assert_hook_sequence(events(tokens), pattern)
    else:
        with pytest.raises(AssertionError, match=r"do not match the pattern \("):
            assert_hook_sequence(events(tokens), pattern)


@SETTINGS
@given(recording_and_pattern(), st.data())
def test_header_fields_are_compared_only_when_the_pattern_names_them(
    case: tuple[list[Token], list[PatternItem]], data: st.DataObject
) -> None:
    tokens, pattern = case
    assume(tokens)
    evs = events(tokens)
    text = letters(tokens)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(evs)))
        evs.insert(where, make_event("wrote_header_field", key="Host", values=["x"]))
        text = text[:where] + "z" + text[where:]
    assert_hook_sequence(evs, pattern)  # not named: left out, still matches
    named = list(pattern)
    named.insert(data.draw(st.integers(0, len(named))), "wrote_header_field")
    expected = fnmatchcase(text, glob(named))
    if expected:
        assert_hook_sequence(evs, named)
    else:
        with pytest.raises(AssertionError):
            assert_hook_sequence(evs, named)


@SETTINGS
@given(tokens_st, pattern_st)
def test_the_transcript_changes_nothing_but_the_rows(
    tokens: list[Token], pattern: list[PatternItem]
) -> None:
    """`assert_hook_sequence` matches without a transcript, then (on failure) again
    with one: both must reach the same verdict with the same comparisons."""
    evs = events(tokens)
    quiet, logged = _match(pattern, evs, log=False), _match(pattern, evs)
    assert len(quiet.rows) == 0
    assert (quiet.ok, quiet.comparisons, quiet.summary, quiet.diverged) == (
        logged.ok,
        logged.comparisons,
        logged.summary,
        logged.diverged,
    )
    assert (quiet.remains, quiet.hints, quiet.focus, quiet.missing) == (
        logged.remains,
        logged.hints,
        logged.focus,
        logged.missing,
    )
    if not logged.ok:
        assert len(logged.rows) == len(logged.rows.shown()) >= 1  # short: all shown


# -- linear-ish on long recordings -----------------------------------------------------


#: A wall-clock bound loose enough for a loaded CI machine (these take 0.05-0.3 s on
#: a laptop); the exact check of linearity is the comparison count.
GENEROUS = 5.0


def _long(n: int) -> list[Event]:
    cycle = ["get_conn", "got_conn", "wrote_headers", "wrote_request"]
    return [
        make_event(cycle[i % 4], time=i / 1000, index=i)  # type: ignore[arg-type]
        for i in range(n)
    ] + [make_event("put_idle_conn", time=n / 1000, index=n)]


@pytest.mark.parametrize(
    "pattern",
    [
        [..., "put_idle_conn"],
        ["get_conn", ..., "wrote_request", "put_idle_conn"],
        [..., "got_conn", "wrote_headers", ..., "get_conn", "got_conn", ...],
        # Adversarial for naive backtracking: a long segment that almost matches at
        # every position, then a tail that only matches at the very end.
        [..., "get_conn", "got_conn", "wrote_headers", "wrote_request"] * 3
        + [..., "wrote_request", "put_idle_conn"],
    ],
)
def test_100k_events_match_quickly(pattern: list[PatternItem]) -> None:
    evs = _long(100_000)
    started = time.perf_counter()
    outcome = _match(pattern, evs)
    assert outcome.ok
    assert_hook_sequence(evs, pattern)
    elapsed = time.perf_counter() - started
    assert outcome.comparisons <= len(evs) * len(pattern)
    assert elapsed < GENEROUS, f"{elapsed:.2f}s for {len(evs)} events"


def test_100k_events_failure_is_quick_and_short() -> None:
    evs = _long(100_000)
    started = time.perf_counter()
    with pytest.raises(AssertionError) as excinfo:
        assert_hook_sequence(evs, ["get_conn", ..., "got_100_continue", ...])
    elapsed = time.perf_counter() - started
    assert elapsed < GENEROUS, f"{elapsed:.2f}s"
    assert len(str(excinfo.value).splitlines()) < 80


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
def test_comparisons_grow_linearly_with_the_recording(n: int) -> None:
    # All events alike: every start position compares the whole segment but the
    # last item; still at most len(pattern) comparisons per event.
    evs = [make_event("wrote_headers", index=i) for i in range(n)]
    pattern: list[PatternItem] = [..., *["wrote_headers"] * 5, "put_idle_conn", ...]
    outcome = _match(pattern, evs)
    assert not outcome.ok
    assert 6 * (n - 6) <= outcome.comparisons <= 6 * n
