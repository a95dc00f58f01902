"""The server fixtures as pytest runs them: per-test reset, errors reported in the test
that caused them, and a long session that stops cleanly."""

from __future__ import annotations

import pathlib
import re

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _plugin_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inner runs load the plugin with -p, whether or not the outer run autoloads.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


def test_route_error_fails_the_test_that_caused_it_only(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        async def boom(scope, receive, send):
            raise ValueError("boom in the handler")

        def test_causes_it(httptrace_server):
            httptrace_server.add_route("/boom", boom)
            with httptrace_server.client() as client:
                assert client.get("/boom").status_code == 500

        def test_next_one(httptrace_server):
            with httptrace_server.client() as client:
                assert client.get("/boom").status_code == 404  # route gone
            assert [r.path for r in httptrace_server.log.requests] == ["/boom"]
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_causes_it*",
            '*raise ValueError("boom in the handler")',
            "E*ValueError: boom in the handler",
            "*The above exception was the direct cause of the following exception*",
            "E*RouteError: route handler for GET /boom raised "
            "ValueError('boom in the handler'); the server answered 500*",
        ]
    )
    assert "ERROR at teardown of test_next_one" not in result.stdout.str()


def test_raw_script_failure_fails_the_test_at_teardown(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import httpx, pytest
        from pytest_httptrace.raw_server import ReadHead, ReadBody, Send

        def test_expects_a_body(httptrace_raw_server):
            raw = httptrace_raw_server
            raw.script([ReadHead(), ReadBody(size=5, timeout=0.05), Send(b"x")])
            with raw.client(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout):
                client.get(raw.url("/"))

        def test_clean_after(httptrace_raw_server):
            assert httptrace_raw_server.connections == []
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_expects_a_body*",
            "E*RawScriptError: connection 0, step 1 ReadBody(size=5, timeout=0.05): "
            "nothing more after 0.05s (0 unread bytes)",
        ]
    )


def test_a_raw_script_never_reached_fails_the_test_at_teardown(
    pytester: pytest.Pytester,
) -> None:
    """Issue #13 item 13: a scripted connection that never arrives, or a script left
    half-way, is a failure naming the script and the step."""
    pytester.makepyfile(
        """
        from pytest_httptrace.raw_server import Close, ReadHead, Send

        def test_second_connection_never_comes(httptrace_raw_server):
            raw = httptrace_raw_server
            raw.script(
                [ReadHead(), Send.response(200, "one")],
                [ReadHead(), Send.response(200, "two"), Close()],
            )
            with raw.client() as client:
                assert client.get(raw.url("/")).text == "one"

        def test_second_request_never_comes(httptrace_raw_server):
            raw = httptrace_raw_server
            raw.script([ReadHead(), Send.response(200, "one"), ReadHead(), Close()])
            with raw.client() as client:
                assert client.get(raw.url("/")).text == "one"
                raw.check(grace=0.1)  # the second ReadHead is still waiting

        def test_every_step_ran(httptrace_raw_server):
            raw = httptrace_raw_server
            raw.script([ReadHead(), Send.response(200, "one"), Close()])
            with raw.client() as client:
                assert client.get(raw.url("/")).text == "one"
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    # (the second test also errors at teardown: the client closed while ReadHead waited)
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_second_connection_never_comes*",
            "E*RawScriptError: script 1 (ReadHead, Send, Close) never ran: 1 "
            "connection arrived, 2 scripted; step 0 ReadHead(timeout=5.0) was never "
            "reached",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_second_request_never_comes _*",
            "E*RawScriptError: connection 0, step 2 ReadHead(timeout=5.0): not done "
            "when the test ended (2 of 4 steps ran; script 0: ReadHead, Send, "
            "ReadHead, Close)",
        ]
    )


def test_a_session_of_200_tests_stops_cleanly(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import os, threading
        import httpx, pytest
        from pytest_httptrace._certs import client_ssl_context

        def _fds():
            return set(os.listdir("/proc/self/fd"))

        def pytest_sessionstart(session):
            session.config.stash_start = (_fds(), set(threading.enumerate()))

        def pytest_sessionfinish(session):
            fds, threads = session.config.stash_start
            new_threads = [t.name for t in threading.enumerate() if t not in threads]
            new_fds = sorted(_fds() - fds)
            print(f"\\nLEFT BEHIND: threads={new_threads} fds={len(new_fds)}")

        @pytest.fixture(scope="session")
        def shared_client(httptrace_ca):
            # Set up before the server, so torn down after it: the server stops
            # while this client holds an idle TLS keep-alive connection.
            context = client_ssl_context(httptrace_ca)
            with httpx.Client(verify=context, trust_env=False) as client:
                yield client
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.parametrize("n", range(200))
        def test_request(shared_client, httptrace_server, n):
            if n % 10 == 9:
                async def main():
                    async with httptrace_server.async_client(http2=True) as client:
                        return await client.get("/")
                assert asyncio.run(main()).text == "hello"
            elif n % 2:
                with httptrace_server.client() as client:
                    assert client.get("/").text == "hello"
            else:
                assert shared_client.get(httptrace_server.url("/")).text == "hello"
            [request] = httptrace_server.log.requests
            assert request.path == "/"
        """
    )
    result = pytester.runpytest_subprocess("-p", "httptrace", "-W", "error", "-s")
    result.assert_outcomes(passed=200)
    result.stdout.fnmatch_lines(["LEFT BEHIND: threads=[] fds=0"])
    for text in ("Warning", "Exception ignored", "Traceback"):
        assert text not in result.stderr.str()


def test_the_examples_of_docs_servers_md_pass(pytester: pytest.Pytester) -> None:
    page = pathlib.Path(__file__).parent.parent / "docs" / "servers.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    tests = [block for block in blocks if "def test_" in block]
    for number, block in enumerate(tests):
        pytester.makepyfile(**{f"test_doc_{number}": block})
    # One example is an async client shared with pytest-asyncio's loop_scope.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest(
        "-p", "httptrace", "-p", "pytest_asyncio.plugin", "-W", "error"
    )
    functions = sum(len(re.findall(r"^(?:async )?def test_", b, re.M)) for b in tests)
    result.assert_outcomes(passed=functions)
    assert len(tests) >= 3


SHARED_CLIENTS = """
    import pytest
    import pytest_asyncio
    from pytest_httptrace import assert_new_connection, assert_reused

    @pytest.fixture(scope="module")
    def api(httptrace_session_server):
        with httptrace_session_server.client() as client:
            yield client

    def test_first_dials(api, httptrace_server, httptrace_recorder):
        httptrace_server.add_route("/items/{id}", "an item")
        assert api.get("/items/1").text == "an item"
        assert_new_connection(httptrace_recorder.requests[0])

    def test_second_reuses_the_connection(api, httptrace_server, httptrace_recorder):
        assert api.get("/items/1").status_code == 404  # the route was reset
        assert_reused(httptrace_recorder.requests[0])
        assert [r.path for r in httptrace_server.log.requests] == ["/items/1"]

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def async_api(httptrace_session_server):
        async with httptrace_session_server.async_client(http2=True) as client:
            yield client

    @pytest.mark.asyncio(loop_scope="module")
    async def test_async_first(async_api, httptrace_recorder):
        assert (await async_api.get("/")).http_version == "HTTP/2"
        assert_new_connection(httptrace_recorder.requests[0])

    @pytest.mark.asyncio(loop_scope="module")
    async def test_async_second(async_api, httptrace_recorder):
        await async_api.get("/")
        assert_reused(httptrace_recorder.requests[0])

    @pytest.fixture(scope="module")
    def wrong(httptrace_server):
        yield httptrace_server

    def test_module_client_over_the_per_test_fixture(wrong):
        pass
"""


def test_shared_clients_over_the_session_servers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13 item 10: module-scoped clients (sync, and async with pytest-asyncio's
    loop_scope) on the session-scoped server; per-test reset where a test asks."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_shared=SHARED_CLIENTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "httptrace",
        "-p",
        "pytest_asyncio.plugin",
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
    )
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_module_client_over_the_per_test_fixture*",
            "*ScopeMismatch: You tried to access the function scoped fixture "
            "httptrace_server with a module scoped request object*",
        ]
    )
