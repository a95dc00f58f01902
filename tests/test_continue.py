"""Expect: 100-continue and 1xx over HTTP/1.1, against the scripted raw server.

The raw server records what it received byte for byte, so "the body was (not) sent"
is checked on the wire, not from the hooks.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from pytest_httptrace import (
    ClientTrace,
    Recorder,
    RequestAbortedByHook,
    wait_for_100_continue,
    with_client_trace,
)
from pytest_httptrace.raw_server import Close, Drain, ReadBody, ReadHead, Send

#: Every test runs on httpx and on httpx2 (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("httpx_lib")

BODY = b"x" * 5000
EXPECT = {"Expect": "100-continue"}


def _visible(hooks: list[str]) -> list[str]:
    return [h for h in hooks if h != "wrote_header_field"]


def _after_got_conn(hooks: list[str]) -> list[str]:
    hooks = _visible(hooks)
    return hooks[hooks.index("got_conn") + 1 :]


def _post(mode: str, raw: Any, **kw: Any) -> httpx.Response:
    kw.setdefault("content", BODY)
    if mode == "sync":
        with raw.client() as client:
            return client.post(raw.url("/upload"), **kw)  # type: ignore[no-any-return]

    async def main() -> httpx.Response:
        async with raw.async_client() as client:
            return await client.post(raw.url("/upload"), **kw)

    return asyncio.run(main())


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_every_interim_response_reaches_its_hook(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            ReadBody(),
            Send.interim(100),
            Send.interim(102),
            Send.interim(103, {"Link": "</a.css>; rel=preload"}),
            Send.interim(103, {"Link": "</b.js>; rel=preload"}),
            Send.response(200, "done"),
        ]
    )
    response = _post(mode, raw, headers=EXPECT)
    assert response.status_code == 200 and response.text == "done"
    (request,) = httptrace_recorder.requests
    assert _after_got_conn(request.hooks) == [
        "wrote_headers",
        "wrote_request",  # stock httpx: the body went out at once
        "got_first_response_byte",
        "got_100_continue",
        "got_1xx_response",
        "got_1xx_response",
        "got_1xx_response",
        "got_1xx_response",
        "put_idle_conn",
    ]
    interim = request.getcalls("got_1xx_response")
    assert [e.args["code"] for e in interim] == [100, 102, 103, 103]
    assert [e.args["headers"].get("link") for e in interim] == [
        None,
        None,
        "</a.css>; rel=preload",
        "</b.js>; rel=preload",
    ]
    assert "wait_100_continue" not in request.hooks


def test_100_without_expect_is_no_got_100_continue(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.interim(100), Send.response(200)])
    _post("sync", raw)
    (request,) = httptrace_recorder.requests
    assert "got_100_continue" not in request.hooks
    assert request.getcall("got_1xx_response").args["code"] == 100


def test_100_twice_is_one_got_100_continue_and_two_1xx(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [ReadHead(), ReadBody(), Send.interim(100), Send.interim(100), Send.response()]
    )
    _post("sync", raw, headers=EXPECT)
    (request,) = httptrace_recorder.requests
    assert request.hooks.count("got_100_continue") == 1
    assert request.hooks.count("got_1xx_response") == 2


def test_101_is_final_and_never_an_interim(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            Send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
            Close(),
        ]
    )
    with raw.client() as client:
        response = client.get(raw.url("/"), headers={"Upgrade": "x"})
    assert response.status_code == 101
    (request,) = httptrace_recorder.requests
    assert "got_1xx_response" not in request.hooks


def test_fifty_interim_responses_are_all_delivered(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    hints = [Send.interim(103, {"Link": f"</{i}.css>"}) for i in range(50)]
    raw.script([ReadHead(), *hints, Send.response(200, "ok")])
    with raw.client() as client:
        assert client.get(raw.url("/")).text == "ok"
    (request,) = httptrace_recorder.requests
    links = [e.args["headers"]["link"] for e in request.getcalls("got_1xx_response")]
    assert links == [f"</{i}.css>" for i in range(50)]
    assert request.hooks.count("got_first_response_byte") == 1


def test_malformed_interim_headers_are_a_clear_error(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send(b"HTTP/1.1 103 Early Hints\r\nno colon here\r\n\r\n")])
    with raw.client(timeout=5) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(raw.url("/"))
    (request,) = httptrace_recorder.requests
    assert isinstance(request.error, httpx.RemoteProtocolError)
    assert "got_1xx_response" not in request.hooks


@pytest.mark.parametrize("mode", MODES)
def test_raising_1xx_hook_aborts_and_closes_the_connection(
    mode: str, httptrace_raw_server: Any
) -> None:
    raw = httptrace_raw_server
    raw.script(
        [ReadHead(), Send.interim(103, {"Link": "</a.css>"}), Send.response(200)],
        [ReadHead(), Send.response(200, "second")],
    )

    def refuse(code: int, headers: httpx.Headers) -> None:
        raise LookupError("unwanted hint")

    trace = ClientTrace(got_1xx_response=refuse)
    url = raw.url("/")
    if mode == "sync":
        with raw.client() as client:
            with with_client_trace(trace), pytest.raises(RequestAbortedByHook) as info:
                client.get(url)
            assert client.get(url).text == "second"
    else:

        async def main() -> Any:
            async with raw.async_client() as client:
                with with_client_trace(trace), pytest.raises(RequestAbortedByHook) as i:
                    await client.get(url)
                assert (await client.get(url)).text == "second"
                return i

        info = asyncio.run(main())
    assert isinstance(info.value.__cause__, LookupError)
    assert len(raw.connections) == 2  # the aborted connection was not reused


@pytest.mark.parametrize("mode", MODES)
def test_stock_httpx_sends_the_body_a_417_refused(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    refusal = Send.response(417, headers={"Connection": "close"})
    raw.script([ReadHead(), refusal, Drain(0.3), Close()])
    response = _post(mode, raw, headers=EXPECT)
    assert response.status_code == 417
    raw.wait()
    assert raw.received[0].endswith(BODY)  # the truth: it uploaded anyway
    (request,) = httptrace_recorder.requests
    assert "wait_100_continue" not in request.hooks


# -- the opt-in waiting mode ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_waiting_mode_sends_the_body_after_100(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Drain(0.1), Send.interim(100), ReadBody(), Send.response()])
    with wait_for_100_continue(timeout=5):
        assert _post(mode, raw, headers=EXPECT).status_code == 200
    raw.wait()
    head, _, body = raw.received[0].partition(b"\r\n\r\n")
    assert body == BODY
    (request,) = httptrace_recorder.requests
    assert _after_got_conn(request.hooks) == [
        "wrote_headers",
        "wait_100_continue",
        "got_first_response_byte",
        "got_100_continue",
        "got_1xx_response",
        "wrote_request",
        "put_idle_conn",
    ]
    drained = raw.connections[0]
    assert drained.received.index(b"\r\n\r\n") + 4 == len(head) + 4


@pytest.mark.parametrize("mode", MODES)
def test_waiting_mode_never_sends_a_refused_body(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.response(417), Drain(0.3)])
    with wait_for_100_continue(timeout=5):
        response = _post(mode, raw, headers=EXPECT)
    assert response.status_code == 417
    raw.wait()
    assert raw.received[0].endswith(b"\r\n\r\n")  # the head, and not one body byte
    assert BODY[:100] not in raw.received[0]
    (request,) = httptrace_recorder.requests
    assert _after_got_conn(request.hooks) == [
        "wrote_headers",
        "wait_100_continue",
        "got_first_response_byte",
        "wrote_request",
    ]
    assert request.getcall("wrote_request").args == {"err": None}
    assert request.connection is not None
    assert request.connection.closed_at is not None  # not reused: body unsent


@pytest.mark.parametrize("mode", MODES)
def test_waiting_mode_sends_the_body_after_the_timeout(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.response(201)])
    with wait_for_100_continue(timeout=0.05):
        assert _post(mode, raw, headers=EXPECT).status_code == 201
    raw.wait()
    assert raw.received[0].endswith(BODY)
    (request,) = httptrace_recorder.requests
    hooks = _after_got_conn(request.hooks)
    assert hooks[:3] == ["wrote_headers", "wait_100_continue", "wrote_request"]
    assert "got_100_continue" not in hooks


def test_waiting_mode_ignores_expect_without_a_body(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.response(200)])
    with wait_for_100_continue(timeout=5), raw.client() as client:
        client.get(raw.url("/"), headers=EXPECT)
    (request,) = httptrace_recorder.requests
    assert "wait_100_continue" not in request.hooks


def test_waiting_mode_per_request_extension(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send.response(413), Drain(0.2)])
    with raw.client() as client:
        response = client.post(
            raw.url("/"),
            content=BODY,
            headers=EXPECT,
            extensions={"wait_for_100_continue": 2.0},
        )
    assert response.status_code == 413
    raw.wait()
    assert BODY[:100] not in raw.received[0]
    assert "wait_100_continue" in httptrace_recorder.requests[0].hooks


def test_waiting_mode_from_marker_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhttptrace_wait_for_100_continue = 0.05\n")
    pytester.makepyfile(
        """
        import pytest
        from pytest_httptrace.raw_server import Drain, ReadBody, ReadHead, Send

        def _post(raw):
            with raw.client() as client:
                return client.post(raw.url("/"), content=b"y" * 1000,
                                   headers={"Expect": "100-continue"})

        @pytest.mark.httptrace(wait_for_100_continue=5)
        def test_marker(httptrace_raw_server, httptrace_recorder):
            raw = httptrace_raw_server
            raw.script([ReadHead(), Send.response(417), Drain(0.2)])
            assert _post(raw).status_code == 417
            raw.wait()
            assert not raw.received[0].endswith(b"y" * 10)
            assert "wait_100_continue" in httptrace_recorder.requests[0].hooks

        def test_ini_timeout(httptrace_raw_server, httptrace_recorder):
            raw = httptrace_raw_server
            raw.script([ReadHead(), ReadBody(), Send.response(200)])
            assert _post(raw).status_code == 200
            assert "wait_100_continue" in httptrace_recorder.requests[0].hooks

        @pytest.mark.httptrace(wait_for_100_continue=False)
        def test_marker_turns_it_off(httptrace_raw_server, httptrace_recorder):
            raw = httptrace_raw_server
            raw.script([ReadHead(), ReadBody(), Send.response(200)])
            assert _post(raw).status_code == 200
            assert "wait_100_continue" not in httptrace_recorder.requests[0].hooks
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=3)


@pytest.mark.httptrace(wait_for_100_continue=0.05)
def test_waiting_mode_marker_in_process(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    # In-process (not pytester): the suite's isolation guard checks afterwards that
    # the marker's waiting mode was switched off again.
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.response(200)])
    assert _post("sync", raw, headers=EXPECT).status_code == 200
    assert "wait_100_continue" in httptrace_recorder.requests[0].hooks


def test_after_the_marked_test_nothing_waits(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.response(200)])
    assert _post("sync", raw, headers=EXPECT).status_code == 200
    assert "wait_100_continue" not in httptrace_recorder.requests[0].hooks
