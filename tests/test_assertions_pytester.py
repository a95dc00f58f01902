"""The helpers' failures exactly as pytest prints them, with and without rewriting.

The messages are built by the helpers, not by pytest's assertion rewriting (with plugin
autoload off, pytest rewrites only the ``-p`` modules), so ``--assert=plain`` prints the
same text. The helpers hide their own frames: a traceback ends at the user's line.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

MODES = [pytest.param([], id="rewrite"), pytest.param(["--assert=plain"], id="plain")]


def _builders() -> str:
    """The record builders of ``test_assertions.py``, as a module for pytester runs."""
    source = (Path(__file__).parent / "test_assertions.py").read_text()
    start, end = source.index("# -- builders"), source.index("# -- hook()")
    header = textwrap.dedent(
        """
        from __future__ import annotations

        import itertools
        import textwrap
        from collections.abc import Sequence
        from typing import Any

        import pytest

        from pytest_httptrace.recorder import ConnectionRecord, Recorder, RequestRecord
        from pytest_httptrace.trace import TLSConnectionState
        """
    )
    return header + source[start:end]


def as_printed(message: str) -> list[str]:
    """How pytest prints an AssertionError with ``message`` under the failing line."""
    first, *rest = textwrap.dedent(message).strip("\n").split("\n")
    return [f"E       AssertionError: {first}"] + [f"E       {line}" for line in rest]


def e_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("E   ")]


@pytest.fixture
def builders(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(builders=_builders())
    return pytester


@pytest.mark.parametrize("mode", MODES)
def test_sequence_failure_exactly_as_printed(
    builders: pytest.Pytester, mode: list[str]
) -> None:
    builders.makepyfile(
        test_seq="""
        from builders import REUSED, make_request
        from pytest_httptrace.assertions import assert_hook_sequence, hook

        def test_second_request_is_new():
            request = make_request(REUSED, returned=0.0055, closed=0.0055)
            assert_hook_sequence(request, ["get_conn", hook("got_conn", reused=False), ...])
        """  # noqa: E501
    )
    result = builders.runpytest(*mode)
    result.assert_outcomes(failed=1)
    expected = as_printed(
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
    result.stdout.fnmatch_lines(
        [
            '>       assert_hook_sequence(request, ["get_conn", hook("got_conn", '
            "reused=False), ...])",
            *expected,
            "",
            "test_seq.py:6: AssertionError",
        ],
        consecutive=True,
    )
    assert e_lines(result) == expected
    result.stdout.no_fnmatch_line("*pytest_httptrace*assertions.py*")
    result.stdout.no_fnmatch_line("*pytest_httptrace?assertions?_*.py*")


@pytest.mark.parametrize("mode", MODES)
def test_a_missing_tail_hook_exactly_as_printed(
    builders: pytest.Pytester, mode: list[str]
) -> None:
    """Issue #13 item 6: which hook never ran, and what happened to the connection."""
    builders.makepyfile(
        test_tail="""
        from builders import NEW_CONNECTION, make_connection, make_request
        from pytest_httptrace.assertions import assert_hook_sequence

        def test_closed_undrained():
            conn = make_connection(1, opened=0.0065, closed=0.0107)
            request = make_request(NEW_CONNECTION[:-1], conn=conn, returned=0.0135, closed=0.01067)
            assert_hook_sequence(request, [..., "got_first_response_byte", "put_idle_conn"])
        """  # noqa: E501
    )
    result = builders.runpytest(*mode)
    result.assert_outcomes(failed=1)
    expected = as_printed(
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

        requests:
          #1 GET https://example.test/  (status 200, returned at 13.500 ms, closed at 10.670 ms, made at test_x.py:12)
        timeline (ms since the first hook call):
                    ms  req  conn  thread      hook
          [0]    0.000  #1   c1    MainThread  get_conn host_port='example.test:443'
          [1]    1.000  #1   c1    MainThread  dns_start host='example.test'
          [2]    2.000  #1   c1    MainThread  dns_done addrs=['127.0.0.1']
          [3]    3.000  #1   c1    MainThread  connect_start network='tcp' addr='127.0.0.1:443'
          [4]    4.000  #1   c1    MainThread  connect_done network='tcp' addr='127.0.0.1:443'
          [5]    5.000  #1   c1    MainThread  tls_handshake_start
          [6]    6.000  #1   c1    MainThread  tls_handshake_done state=<TLSv1.3 http/1.1>
          [7]    7.000  #1   c1    MainThread  got_conn reused=False was_idle=False
                 8.000  #1   c1    MainThread  wrote_header_field x2: Host, Accept
          [8]   10.000  #1   c1    MainThread  wrote_headers
          [9]   11.000  #1   c1    MainThread  wrote_request
          [10]  12.000  #1   c1    MainThread  got_first_response_byte
        """  # noqa: E501
    )
    assert e_lines(result) == expected
    result.stdout.no_fnmatch_line("*pytest_httptrace*assertions.py*")
    result.stdout.no_fnmatch_line("*pytest_httptrace?assertions?_*.py*")


HELPERS = """
    import pytest
    from builders import NEW_CONNECTION, REUSED, make_connection, make_recorder, make_request
    from pytest_httptrace.assertions import (
        assert_after_return, assert_concurrent, assert_connections_opened,
        assert_hook_order, assert_hook_sequence, assert_max_connections,
        assert_new_connection, assert_no_leaks, assert_phases, assert_reused,
        assert_shared_connection,
    )

    @pytest.fixture
    def pair():
        conn = make_connection(1)
        a = make_request(NEW_CONNECTION, id=1, conn=conn, returned=0.0135, closed=0.0125)
        b = make_request(REUSED, id=2, conn=conn, start=0.014, returned=0.0205, closed=0.02)
        return a, b

    def test_order(pair):
        a, b = pair
        assert_hook_order(b, "put_idle_conn", a, "get_conn")

    def test_concurrent(pair):
        assert_concurrent(*pair)

    def test_max_connections():
        rec = make_recorder(*[
            make_request(["get_conn", "got_conn"], id=i, conn=make_connection(i), start=i / 1000)
            for i in (1, 2)
        ])
        assert_max_connections(rec, 1)

    def test_shared():
        a = make_request(["get_conn", "got_conn"], id=1, conn=make_connection(1))
        b = make_request(["get_conn", "got_conn"], id=2, conn=make_connection(2))
        assert_shared_connection(a, b)

    def test_reused(pair):
        assert_reused(pair[0])

    def test_new_connection(pair):
        assert_new_connection(pair[1])

    def test_connections_opened(pair):
        assert_connections_opened(make_recorder(*pair), 2)

    def test_after_return(pair):
        assert_after_return(pair[1], "put_idle_conn")

    def test_leaks():
        leaked = make_request(REUSED[:5], url="https://example.test/stream/3",
                              closed=None, origin="test_user.py:7")
        assert_no_leaks(make_recorder(leaked))

    def test_nothing_recorded():
        assert_no_leaks(make_recorder())

    def test_phases(pair):
        assert_phases(pair[0], wait=0.0005)
"""  # noqa: E501

HELPER_FIRST_LINES = [
    "E       AssertionError: request #1's get_conn came before request #2's "
    "put_idle_conn, expected after it:",
    "E       AssertionError: requests #1 and #2 were not in flight at the same time:",
    "E       AssertionError: expected at most 1 connection open at once, 2 were open "
    "at 2.000 ms:",
    "E       AssertionError: requests #1 and #2 did not share a connection: #1 used "
    "c1, #2 used c2:",
    "E       AssertionError: request #1 GET https://example.test/ got a new connection "
    "(c1 HTTP/1.1 new), expected a reused one:",
    "E       AssertionError: request #2 GET https://example.test/ reused a connection "
    "(c1 HTTP/1.1 reused, idle for 250.000 ms), expected a new one:",
    "E       AssertionError: expected exactly 2 connections to be opened, 1 was:",
    "E       AssertionError: request #2 GET https://example.test/: put_idle_conn ran "
    "before the call returned, expected after it:",
    "E       AssertionError: 1 response was never closed: its connection was taken and "
    "not given back:",
    "E       AssertionError: no request was recorded. Likely causes:",
    "E       AssertionError: request #1 GET https://example.test/ is outside its "
    "budget in 1 phase:",
]


@pytest.mark.parametrize("mode", MODES)
def test_every_helper_fails_with_its_own_text(
    builders: pytest.Pytester, mode: list[str]
) -> None:
    builders.makepyfile(test_helpers=HELPERS)
    result = builders.runpytest(*mode)
    result.assert_outcomes(failed=len(HELPER_FIRST_LINES))
    firsts = [line for line in e_lines(result) if "AssertionError:" in line]
    assert firsts == HELPER_FIRST_LINES
    result.stdout.fnmatch_lines(
        [
            "E         #1 GET https://example.test/stream/3  (status 200, connection "
            "-, made at test_user.py:7)",
            "E       hint: close the response when done with it (a `with` block around "
            "the request, or its close/release method): that gives its connection "
            "back to the pool.",
        ],
        consecutive=True,
    )
    # Every traceback ends at the test's own line, none inside the helpers.
    result.stdout.no_fnmatch_line("*pytest_httptrace*assertions.py*")
    result.stdout.no_fnmatch_line("*pytest_httptrace?assertions?_*.py*")
    locations = [ln for ln in result.stdout.lines if ln.endswith(": AssertionError")]
    assert len(locations) == len(HELPER_FIRST_LINES)
    assert all(ln.startswith("test_helpers.py:") for ln in locations)


def test_rewriting_does_not_change_the_messages(builders: pytest.Pytester) -> None:
    builders.makepyfile(test_helpers=HELPERS)
    rewritten = e_lines(builders.runpytest())
    plain = e_lines(builders.runpytest("--assert=plain"))
    assert len(rewritten) > 50
    assert rewritten == plain


@pytest.mark.parametrize("mode", MODES)
def test_pattern_mistakes_are_errors_of_the_test(
    builders: pytest.Pytester, mode: list[str]
) -> None:
    builders.makepyfile(
        test_bad="""
        from builders import REUSED, make_request
        from pytest_httptrace.assertions import assert_hook_sequence, hook

        def test_typo():
            assert_hook_sequence(make_request(REUSED), ["get_conn", "got_con", ...])

        def test_not_an_item():
            assert_hook_sequence(make_request(REUSED), ["get_conn", ..., None])

        def test_bad_argument():
            hook("got_conn", reuse=True)
        """
    )
    result = builders.runpytest(*mode)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "E       ValueError: assert_hook_sequence(): item 1 of the pattern, "
            "'got_con', is not a hook name. Did you mean 'got_conn'? Valid hook "
            "names: get_conn, *",
            "E       TypeError: assert_hook_sequence(): item 2 of the pattern is None "
            "(NoneType); expected a hook name (str), hook(...) or ... (Ellipsis).",
            "E       TypeError: hook('got_conn') has no argument 'reuse'. got_conn's "
            "arguments: conn, reused, was_idle, idle_time.",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_httptrace*assertions.py*")
    result.stdout.no_fnmatch_line("*pytest_httptrace?assertions?_*.py*")


@pytest.fixture
def plugin_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run pytest in a subprocess with the plugin, as a user's suite would."""
    for name in list(os.environ):
        if name.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run() -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "-p", "httptrace", "-p", "no:cacheprovider"
        )

    return run


def test_a_users_unclosed_stream_is_named_with_its_line(
    pytester: pytest.Pytester, plugin_run: Any
) -> None:
    """The issue's acceptance case: a test written by a user, with the plugin's own
    fixtures, leaves a ``stream=True`` response open; the message names its line."""
    pytester.makepyfile(
        test_download="""
        from pytest_httptrace.assertions import assert_no_leaks

        def test_download(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                response = client.send(client.build_request("GET", "/stream/3"), stream=True)
                try:
                    assert_no_leaks(httptrace_recorder)
                finally:
                    response.close()
        """  # noqa: E501
    )
    result = plugin_run()
    assert result.parseoutcomes().get("failed") == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            ">               assert_no_leaks(httptrace_recorder)",
            "E               AssertionError: 1 response was never closed: its "
            "connection was taken and not given back:",
            "E                 #1 GET https://localhost:*/stream/3  (status 200, "
            "connection c1, made at test_download.py:5)",
            "E               hint: use `with client.stream(...) as response:` *",
        ],
        consecutive=True,
    )


# -- docs/assertions.md shows each helper's failure as pytest prints it ----------------

DOC = Path(__file__).parents[1] / "docs" / "assertions.md"
EXAMPLE = re.compile(
    r"<!-- example: (\w+) -->\n```python\n(.*?)```\n\n```text\n(.*?)\n```", re.S
)


def _normalized(lines: list[str]) -> list[str]:
    """Lines with what differs between runs and machines blotted out: numbers (ports,
    times, line numbers), resolved addresses, alignment."""
    out = []
    for line in lines:
        line = re.sub(r"addrs=\[[^\]]*\]", "addrs=[...]", line)
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        out.append(" ".join(line.split()))
    return out


def test_docs_show_each_failure_as_pytest_prints_it(
    pytester: pytest.Pytester, plugin_run: Any
) -> None:
    examples = EXAMPLE.findall(DOC.read_text())
    assert len(examples) == 11
    for name, code, _ in examples:
        header = "from pytest_httptrace.assertions import *  # noqa: F403\n"
        pytester.makepyfile(**{f"test_{name}": header + code})
    result = plugin_run()
    assert result.parseoutcomes().get("failed") == len(examples), result.stdout.str()
    printed: dict[str, list[str]] = {}
    block: list[str] = []
    for line in result.stdout.lines:
        if line.startswith(">"):
            block = [line]
        elif line.startswith("E") and block:
            block.append(line)
        located = re.match(r"test_(\w+)\.py:\d+: AssertionError", line)
        if located:
            printed[located.group(1)], block = block, []
    for name, _, shown in examples:
        assert _normalized(printed[name]) == _normalized(shown.splitlines()), name
