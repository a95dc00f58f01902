"""urllib3 and requests against the scripted server: faults (Go's hooks, the
library's own exception, a healthy pool after), interim responses, hook errors."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import requests
import urllib3
from http1_driver import CLIENTS, Driver

from pytest_httptrace import (
    ClientTrace,
    Recorder,
    with_client_trace,
)
from pytest_httptrace.raw_server import Close, ReadBody, ReadHead, Reset, Send, Sleep
from pytest_httptrace.recorder import RequestRecord

# The model's base class (the top-level name is httpx's subclass today).
from pytest_httptrace.trace import RequestAbortedByHook

OK = Send.response(200, "fine")


def visible(request: RequestRecord) -> list[str]:
    return [h for h in request.hooks if h != "wrote_header_field"]


def get_twice(kind: str, raw: Any) -> tuple[Any, Any]:
    """First GET (expected to fail or not), then a second GET on the same pool."""
    with Driver(kind, raw) as driver:
        try:
            first: Any = driver.get("/")
        except driver.error as exc:
            first = exc
        return first, driver.get("/")


@pytest.mark.parametrize("kind", CLIENTS)
def test_reset_after_the_head(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Reset()], [ReadHead(), OK])
    first, second = get_twice(kind, raw)
    if kind == "requests":
        assert isinstance(first, requests.ConnectionError)
    else:
        assert isinstance(first, urllib3.exceptions.ProtocolError)
    assert second.body == b"fine"
    failed, after = httptrace_recorder.requests
    # As in Go: no byte arrived, so no got_first_response_byte.
    assert visible(failed)[-3:] == ["got_conn", "wrote_headers", "wrote_request"]
    assert "put_idle_conn" not in failed.hooks
    assert failed.error is first and failed.status is None
    assert after.got_conn is not None and not after.got_conn.reused  # dialed anew


@pytest.mark.parametrize("kind", CLIENTS)
def test_truncated_body(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    partial = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    raw.script([ReadHead(), partial, Close()], [ReadHead(), OK])
    first, second = get_twice(kind, raw)
    expected = (
        requests.exceptions.ChunkedEncodingError
        if kind == "requests"
        else urllib3.exceptions.ProtocolError
    )
    assert isinstance(first, expected)
    assert second.body == b"fine"
    truncated, after = httptrace_recorder.requests
    assert "got_first_response_byte" in truncated.hooks
    assert "put_idle_conn" not in truncated.hooks  # not kept: Go does not call it
    assert truncated.status == 200 and truncated.error is first
    assert truncated.closed_at is not None
    assert after.got_conn is not None and not after.got_conn.reused


@pytest.mark.parametrize("kind", CLIENTS)
def test_stale_keep_alive_connection(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """The server closes an idle keep-alive connection between two requests:
    urllib3 notices at checkout, so the second request dials anew."""
    raw = httptrace_raw_server
    raw.script([ReadHead(), OK, Close()], [ReadHead(), Send.response(200, "again")])
    with Driver(kind, raw) as driver:
        assert driver.get("/").body == b"fine"
        raw.wait(1)
        driver.wait_until_idle_dropped()
        assert driver.get("/").body == b"again"
    first, second = httptrace_recorder.requests
    assert "put_idle_conn" in first.hooks  # it did go back to the pool
    assert second.got_conn is not None and not second.got_conn.reused
    assert "connect_start" in second.hooks
    assert first.connection is not None and first.connection.closed_at is not None


@pytest.mark.parametrize("kind", CLIENTS)
def test_malformed_status_line(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send(b"HTTP/1.1 two-hundred OK\r\n\r\n")], [ReadHead(), OK])
    first, second = get_twice(kind, raw)
    expected = (
        requests.ConnectionError
        if kind == "requests"
        else urllib3.exceptions.ProtocolError
    )
    assert isinstance(first, expected)
    assert "BadStatusLine" in repr(first)
    assert second.body == b"fine"
    malformed, _ = httptrace_recorder.requests
    assert visible(malformed)[-1] == "got_first_response_byte"
    assert malformed.status is None and malformed.error is first


@pytest.mark.parametrize("kind", CLIENTS)
def test_first_byte_is_the_first_byte(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """A status line that arrives in two pieces, late: the hook fires when the first
    piece arrives, neither before nor at the end of the line."""
    raw = httptrace_raw_server
    raw.script(
        [
            ReadHead(),
            Sleep(0.1),
            Send(b"HTTP/1.1 2"),
            Sleep(0.1),
            Send(b"00 OK\r\n"),
            Send(b"Content-Length: 0\r\n\r\n"),
        ]
    )
    with Driver(kind, raw) as driver:
        driver.get("/")
    (request,) = httptrace_recorder.requests
    first = request.getcall("got_first_response_byte").time
    # 0.1 s each, less a margin: the stamps are taken once a write or read returned,
    # and a loaded machine can pause the client in between (88 ms seen once).
    assert first - request.getcall("wrote_request").time >= 0.05
    assert request.closed_at is not None and request.closed_at - first >= 0.05


@pytest.mark.parametrize("kind", CLIENTS)
def test_expect_100_continue_skipped_by_http_client(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """http.client sends the body at once and skips the 100: both are reported."""
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.interim(100), OK])
    with Driver(kind, raw) as driver:
        result = driver.request(
            "POST", "/", body=b"data", headers={"Expect": "100-continue"}
        )
    assert result.body == b"fine"
    (request,) = httptrace_recorder.requests
    assert visible(request)[-6:] == [
        "wrote_headers",
        "wrote_request",  # no wait_100_continue: the body went out at once
        "got_first_response_byte",
        "got_100_continue",
        "got_1xx_response",
        "put_idle_conn",
    ]
    interim = request.getcall("got_1xx_response")
    assert interim.args["code"] == 100
    assert isinstance(interim.args["headers"], urllib3.HTTPHeaderDict)
    assert request.status == 200


@pytest.mark.parametrize("kind", CLIENTS)
def test_103_is_taken_as_the_final_response(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """http.client returns any 1xx but 100 as the final response: the record says
    what the client returned, so a test expecting the 200 fails truthfully."""
    raw = httptrace_raw_server
    hints = Send.interim(103, {"Link": "</style.css>; rel=preload"})
    raw.script([ReadHead(), hints, OK, Sleep(0.2)])
    with Driver(kind, raw) as driver:
        assert driver.get("/").status == 103
    (request,) = httptrace_recorder.requests
    assert request.status == 103
    assert "got_1xx_response" not in request.hooks


@pytest.mark.parametrize("kind", CLIENTS)
def test_raising_1xx_hook_aborts_the_request(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.interim(100), OK], [ReadHead(), OK])

    def refuse(code: int, headers: Any) -> None:
        raise ValueError("no interim responses, please")

    with Driver(kind, raw) as driver:
        with (
            with_client_trace(ClientTrace(got_1xx_response=refuse)),
            pytest.raises(RequestAbortedByHook) as info,
        ):
            driver.request("POST", "/", body=b"x", headers={"Expect": "100-continue"})
        assert isinstance(info.value, urllib3.exceptions.HTTPError)
        assert isinstance(info.value.__cause__, ValueError)
        assert driver.get("/").body == b"fine"  # the pool is healthy
    aborted, after = httptrace_recorder.requests
    assert aborted.error is info.value
    assert "put_idle_conn" not in aborted.hooks
    assert aborted.connection is not None and aborted.connection.closed_at is not None
    assert after.got_conn is not None and not after.got_conn.reused


@pytest.mark.parametrize("kind", CLIENTS)
def test_hook_error_raised_from_the_call_after_the_request(
    kind: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    def boom(info: Any) -> None:
        raise RuntimeError("got_conn hook failed")

    with Driver(kind, httptrace_server) as driver:
        with (
            with_client_trace(ClientTrace(got_conn=boom)),
            pytest.raises(RuntimeError, match="got_conn hook failed"),
        ):
            driver.get("/")
        assert driver.get("/").body == b"hello"
    done, after = httptrace_recorder.requests
    assert "put_idle_conn" in done.hooks  # completed on the wire first
    assert done.status == 200
    assert after.got_conn is not None and after.got_conn.reused


@pytest.mark.parametrize("kind", CLIENTS)
def test_hook_error_after_return_goes_to_unraisablehook(
    kind: str,
    httptrace_server: Any,
    httptrace_recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    def boom(err: Any) -> None:
        raise RuntimeError("put_idle_conn hook failed")

    with (
        Driver(kind, httptrace_server) as driver,
        with_client_trace(ClientTrace(put_idle_conn=boom)),
    ):
        streamed = driver.stream("/bytes/10")
        assert len(driver.read_stream(streamed)) == 10
    assert [str(u.exc_value) for u in seen] == ["put_idle_conn hook failed"]
