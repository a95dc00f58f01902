"""The httptrace_recorder fixture and the httptrace marker, through pytester."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

SETUP_AND_CALL = """
    import pytest

    @pytest.fixture
    def warm_client(httptrace_server):
        client = httptrace_server.client()
        client.get(httptrace_server.url("/"))  # setup phase
        yield client
        client.close()

    def test_phases(httptrace_recorder, httptrace_server, warm_client):
        warm_client.get(httptrace_server.url("/bytes/3"))
        (call,) = httptrace_recorder.requests
        assert call.url.endswith("/bytes/3") and call.phase == "call"
        (setup,) = httptrace_recorder.get_records("setup")
        assert setup.url.endswith(":%d/" % httptrace_server.port)
        assert call.got_conn.reused  # the connection warmed in setup
        events = httptrace_recorder.events
        assert [e.request for e in events] == [call] * len(call.events)
"""


def test_setup_requests_do_not_pollute_the_call_phase(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(SETUP_AND_CALL)
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=1)


def test_failing_test_gets_a_captured_httptrace_section(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_fails(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url("/status/404"))
            assert False, "look at the timeline"
        """
    )
    result = pytester.runpytest("-p", "httptrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- Captured httptrace call -*",
            "*GET https://localhost:*/status/404*",
            "*get_conn*",
            "*tls_handshake_done*",
            "*got_conn*",
        ]
    )


def test_a_helper_failure_prints_its_timeline_once(pytester: pytest.Pytester) -> None:
    """Issue #13 item 8: the helper's message has the timeline; the report section
    does not repeat it, and lists only the requests the message left out."""
    pytester.makepyfile(
        """
        from pytest_httptrace import assert_reused, render_timeline

        def test_helper(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url("/"))
            assert_reused(httptrace_recorder.requests[0])

        def test_own_message(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url("/"))
                client.get(httptrace_server.url("/bytes/3"))
            first, second = httptrace_recorder.requests
            assert False, render_timeline(first)
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(failed=2)
    # The short summary (full length when CI is set) repeats messages: not counted.
    out = result.stdout.str().split("short test summary info")[0]
    helper, own = out.split("test_own_message ___")
    assert helper.count("timeline (ms since the first hook call):") == 1
    assert "Captured httptrace" not in helper
    # The user's message showed request #1 only: the section has #2, and only #2.
    assert own.count("timeline (ms since the first hook call):") == 2
    section = own.split(
        "- Captured httptrace call (requests not in the failure message) -"
    )[1]
    assert "/bytes/3  (status 200" in section
    assert "#1 GET" not in section


LEAKY = """
    import pytest

    {marker}
    def test_leaky(httptrace_recorder, httptrace_server):
        client = httptrace_server.client()
        response = client.send(
            client.build_request("GET", httptrace_server.url("/stream/2")), stream=True
        )
        assert response.status_code == 200
        client.close()  # the response itself is never closed
"""


def test_leak_is_a_warning_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY.format(marker=""))
    result = pytester.runpytest(
        "-p", "httptrace", "-W", "default::pytest_httptrace.HTTPTraceLeakWarning"
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*test_leak_is_a_warning_by_default.py:6: HTTPTraceLeakWarning: "
            "1 response was never closed*",
            "*GET https://localhost:*/stream/2*made at "
            "test_leak_is_a_warning_by_default.py:6*",
        ]
    )


LEFT_OPEN = """
    import gc

    def test_leaky(httptrace_recorder, httptrace_server):
        client = httptrace_server.client()  # neither the client nor the response closed
        client.send(client.build_request("GET", "/stream/2"), stream=True)

    def test_next():
        gc.collect()  # where the leaked socket would have been collected
"""


def _teardown_error(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, ln in enumerate(lines) if "ERROR at teardown" in ln)
    end = next(i for i, ln in enumerate(lines) if "short test summary" in ln)
    return lines[start + 1 : end]


@pytest.mark.parametrize(
    "how",
    [["-W", "error"], ["-o", "filterwarnings=error"]],
    ids=["-W error", "filterwarnings=error"],
)
def test_a_leak_under_warnings_as_errors_reads_like_leaks_error(
    pytester: pytest.Pytester, how: list[str]
) -> None:
    """Issue #13 item 9: no traceback through the plugin's teardown, and no second
    failure when the leaked socket is garbage-collected in a later test."""
    pytester.makepyfile(test_leaky=LEFT_OPEN)
    args = ["-p", "httptrace", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, *how)
    result.assert_outcomes(passed=2, errors=1)
    printed = _teardown_error(result)
    assert [re.sub(r":\d+/", ":PORT/", ln) for ln in printed] == [
        "1 response was never closed: its connection was taken and not given back:",
        "  #1 GET https://localhost:PORT/stream/2  (status 200, connection c1, made "
        "at test_leaky.py:5)",
        "hint: use `with client.stream(...) as response:` (`async with` for "
        "AsyncClient), or call `response.close()` (`await response.aclose()`).",
    ]
    as_error = pytester.runpytest_subprocess(*args, "--httptrace-leaks=error")
    as_error.assert_outcomes(passed=2, errors=1)
    assert _teardown_error(as_error)[0] == printed[0]
    for out in (result, as_error):
        text = out.stdout.str() + out.stderr.str()
        assert "_recording.py" not in text
        assert "ResourceWarning" not in text and "Unraisable" not in text


def test_a_leaked_async_transport_is_not_reported_twice(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_leaky="""
        import asyncio, gc

        def test_leaky(httptrace_recorder, httptrace_server):
            async def main():
                client = httptrace_server.async_client()
                await client.send(client.build_request("GET", "/stream/2"), stream=True)
            asyncio.run(main())

        def test_next():
            gc.collect()
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "httptrace", "-p", "no:cacheprovider", "-W", "error"
    )
    result.assert_outcomes(passed=2, errors=1)
    text = result.stdout.str() + result.stderr.str()
    assert "1 response was never closed" in text
    assert "ResourceWarning" not in text and "Unraisable" not in text


def test_leak_fails_with_marker_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY.format(marker='@pytest.mark.httptrace(leaks="error")'))
    result = pytester.runpytest("-p", "httptrace")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaky*",
            "*1 response was never closed*",
            "*hint: use `with client.stream(...) as response:`*",
        ]
    )


def test_leak_check_off_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY.format(marker=""))
    result = pytester.runpytest(
        "-p", "httptrace", "--httptrace-leaks=off", "-W", "error"
    )
    result.assert_outcomes(passed=1)


def test_leak_mode_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhttptrace_leaks = error\n")
    pytester.makepyfile(LEAKY.format(marker=""))
    result = pytester.runpytest("-p", "httptrace")
    result.assert_outcomes(passed=1, errors=1)


def test_closed_stream_is_no_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.httptrace(leaks="error")
        def test_tidy(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                with client.stream("GET", httptrace_server.url("/stream/2")) as r:
                    r.read()
            assert len(httptrace_recorder.requests) == 1
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=1)


def test_marker_records_without_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.httptrace
        def test_marked(httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url("/"))
            assert False
        """
    )
    result = pytester.runpytest("-p", "httptrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- Captured httptrace call -*", "*got_conn*"])


def test_marker_with_bad_arguments_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.httptrace(leak="error")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest("-p", "httptrace")
    result.stderr.fnmatch_lines(["ERROR: @pytest.mark.httptrace takes*['leak']*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_recorder_type_cannot_be_built_directly() -> None:
    from pytest_httptrace import Recorder

    with pytest.raises(TypeError, match="created by the httptrace_recorder fixture"):
        Recorder()


def test_recorder_without_pytest(httptrace_server: object) -> None:
    from pytest_httptrace import Recorder

    server = httptrace_server
    with Recorder.start() as recorder, server.client() as client:  # type: ignore[attr-defined]
        client.get(server.url("/"))  # type: ignore[attr-defined]
        client.get(server.url("/"))  # type: ignore[attr-defined]
    assert not recorder.recording
    assert len(recorder) == 2 and recorder[1].got_conn is not None
    assert recorder[1].got_conn.reused
    recorder.clear()
    assert len(recorder) == 0 and recorder.events == []


TRACED = """
    import pytest

    {marker}
    def test_one(httptrace_recorder, httptrace_server):
        with httptrace_server.client() as client:
            client.get(httptrace_server.url("/"))

    def test_not_recorded(httptrace_server):
        with httptrace_server.client() as client:
            client.get(httptrace_server.url("/"))
"""


def test_trace_dir_writes_one_file_per_recorded_test(pytester: pytest.Pytester) -> None:
    import json

    pytester.makepyfile(test_traced=TRACED.format(marker=""))
    result = pytester.runpytest("-p", "httptrace", "--httptrace-trace-dir=traces")
    result.assert_outcomes(passed=2)
    files = sorted(p.name for p in (pytester.path / "traces").iterdir())
    assert files == ["test_traced.py_test_one.html", "test_traced.py_test_one.json"]
    trace = json.loads((pytester.path / "traces" / files[1]).read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    assert "tls" in names and "got_conn" in names


def test_trace_file_from_marker_and_dir_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhttptrace_trace_dir = from-ini\n")
    pytester.makepyfile(
        test_traced=TRACED.format(
            marker='@pytest.mark.httptrace(trace_file="out/mine")'
        )
    )
    result = pytester.runpytest("-p", "httptrace")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "out" / "mine.json").is_file()
    assert (pytester.path / "out" / "mine.html").is_file()
    assert not (pytester.path / "from-ini").exists()  # the marker won
