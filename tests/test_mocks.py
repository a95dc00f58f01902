"""Requests answered by a mocking library are marked as such, and a recording made
empty by one names it (respx and pytest-httpx, the real libraries)."""

from __future__ import annotations

import httpx
import pytest

from pytest_httptrace import render_timeline
from pytest_httptrace.recorder import Recorder
from pytest_httptrace.server import TestServer

respx = pytest.importorskip("respx")
pytest.importorskip("pytest_httpx")

pytest_plugins = ["pytester"]


def test_a_respx_answer_is_marked_mocked(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get("https://api.test/items").respond(200, json=[])
        with httpx.Client() as client:
            assert client.get("https://api.test/items").json() == []
    with httptrace_server.client() as client:  # the real thing, for contrast
        client.get("/").raise_for_status()
    mocked, real = httptrace_recorder.requests
    assert mocked.hooks == ["get_conn"] and mocked.connection is None
    assert mocked.answered_by == "respx"
    assert real.answered_by is None and real.connection is not None
    assert "answered by respx: mocked, no connection" in render_timeline([mocked])


def test_nothing_recorded_under_pytest_httpx_names_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import httpx
        from pytest_httptrace import assert_hook_sequence

        def test_mocked(httpx_mock, httptrace_recorder):
            httpx_mock.add_response(url="https://api.test/", json={"ok": True})
            with httpx.Client() as client:
                client.get("https://api.test/")
            assert_hook_sequence(httptrace_recorder, ["get_conn", ...])
        """
    )
    result = pytester.runpytest_subprocess("-p", "httptrace", "-p", "pytest_httpx")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * no request was recorded. What went past the recorder:",
            "E *- HTTPTransport.handle_request (pytest_httpx) replaced the "
            "instrumentation's patch while recording (a mocking library?)*",
        ]
    )


def test_pytest_httpx_passthrough_is_still_traced_and_restored(
    pytester: pytest.Pytester,
) -> None:
    """After a test with httpx_mock the next test's httpx is traced again (the
    mock's restore and ours, in either order, leave httpx as shipped)."""
    pytester.makepyfile(
        """
        import httpx

        SHIPPED = httpx.HTTPTransport.__dict__["handle_request"]

        def test_mocked(httpx_mock, httptrace_recorder):
            httpx_mock.add_response(url="https://api.test/")
            with httpx.Client() as client:
                client.get("https://api.test/")

        def test_after(httptrace_recorder):
            with httpx.Client() as client:
                try:
                    client.get("http://127.0.0.1:1/")
                except httpx.ConnectError:
                    pass
            [request] = httptrace_recorder.requests
            assert request.hooks[0] == "get_conn"

        def test_shipped_again():
            assert httpx.HTTPTransport.__dict__["handle_request"] is SHIPPED
        """
    )
    result = pytester.runpytest_subprocess("-p", "httptrace", "-p", "pytest_httpx")
    result.assert_outcomes(passed=3)


def test_a_respx_answer_ends_like_a_real_one(httptrace_recorder: Recorder) -> None:
    """Read to its end and closed: complete; closed before its end: closed early
    (issue 17: the end hooks of a request that had no connection)."""
    with respx.mock(assert_all_called=True) as router:
        router.get("https://api.test/items").respond(200, content=b"x" * 100)
        with httpx.Client() as client:
            assert client.get("https://api.test/items").content == b"x" * 100
            with client.stream("GET", "https://api.test/items"):
                pass  # closed unread
    read, unread = httptrace_recorder.requests
    assert read.outcome == "complete" and unread.outcome == "closed_early"
    assert [e.hook for e in read.ends] == ["body_closed", "request_done"]
    assert read.getcall("body_closed").args["read_to_end"] is True


def test_an_async_respx_answer_ends_too(httptrace_recorder: Recorder) -> None:
    import asyncio

    async def main() -> None:
        with respx.mock(assert_all_called=True) as router:
            router.get("https://api.test/items").respond(200, json=[1])
            async with httpx.AsyncClient() as client:
                response = await client.get("https://api.test/items")
                assert response.json() == [1]

    asyncio.run(main())
    [request] = httptrace_recorder.requests
    assert request.outcome == "complete"
