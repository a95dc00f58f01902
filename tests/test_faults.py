"""Faults from the scripted server: the hooks Go would show, the right error, and a
pool that still works afterwards (sync and async)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from pytest_httptrace import Recorder
from pytest_httptrace.raw_server import Close, ReadHead, Reset, Send, Sleep

#: Every test runs on httpx and on httpx2 (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("httpx_lib")

MODES = ["sync", "async"]
OK = Send.response(200, "fine")


def _get_twice(mode: str, raw: Any, **client_kw: Any) -> tuple[Any, httpx.Response]:
    """First GET (expected to fail or not), then a second GET on the same client."""
    url = raw.url("/")
    if mode == "sync":
        with raw.client(**client_kw) as client:
            try:
                first: Any = client.get(url)
            except httpx.HTTPError as exc:
                first = exc
            return first, client.get(url)

    async def main() -> tuple[Any, httpx.Response]:
        async with raw.async_client(**client_kw) as client:
            try:
                first: Any = await client.get(url)
            except httpx.HTTPError as exc:
                first = exc
            return first, await client.get(url)

    return asyncio.run(main())


def _visible(hooks: list[str]) -> list[str]:
    return [h for h in hooks if h != "wrote_header_field"]


@pytest.mark.parametrize("mode", MODES)
def test_reset_after_the_head(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Reset()], [ReadHead(), OK])
    first, second = _get_twice(mode, raw)
    assert isinstance(first, (httpx.ReadError, httpx.RemoteProtocolError))
    assert second.text == "fine"
    failed, after = httptrace_recorder.requests
    assert _visible(failed.hooks)[-3:] == ["got_conn", "wrote_headers", "wrote_request"]
    assert "got_first_response_byte" not in failed.hooks
    assert "put_idle_conn" not in failed.hooks
    assert failed.error is first
    assert after.got_conn is not None and not after.got_conn.reused  # dialed anew


@pytest.mark.parametrize("mode", MODES)
def test_truncated_body(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    partial = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    raw.script([ReadHead(), partial, Close()], [ReadHead(), OK])
    first, second = _get_twice(mode, raw)
    assert isinstance(first, httpx.RemoteProtocolError)
    assert second.text == "fine"
    truncated, _ = httptrace_recorder.requests
    assert "got_first_response_byte" in truncated.hooks
    assert "put_idle_conn" not in truncated.hooks  # not kept: Go does not call it
    assert truncated.status == 200 and truncated.error is first
    assert truncated.closed_at is not None


@pytest.mark.parametrize("mode", MODES)
def test_stale_keep_alive_connection(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """The server closes an idle keep-alive connection between two requests: httpx
    notices before reusing it, so the second request dials anew and succeeds."""
    raw = httptrace_raw_server
    raw.script([ReadHead(), OK, Close()], [ReadHead(), Send.response(200, "again")])
    url = raw.url("/")
    if mode == "sync":
        with raw.client() as client:
            assert client.get(url).text == "fine"
            raw.wait(1)
            assert client.get(url).text == "again"
    else:

        async def main() -> None:
            async with raw.async_client() as client:
                assert (await client.get(url)).text == "fine"
                await asyncio.to_thread(raw.wait, 1)
                assert (await client.get(url)).text == "again"

        asyncio.run(main())
    first, second = httptrace_recorder.requests
    assert "put_idle_conn" in first.hooks  # it did go back to the pool
    assert second.got_conn is not None and not second.got_conn.reused
    assert "connect_start" in second.hooks
    assert first.connection is not None and first.connection.closed_at is not None


@pytest.mark.parametrize("mode", MODES)
def test_malformed_status_line(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send(b"HTTP/1.1 two-hundred OK\r\n\r\n")], [ReadHead(), OK])
    first, second = _get_twice(mode, raw)
    assert isinstance(first, httpx.RemoteProtocolError)
    assert second.text == "fine"
    malformed, _ = httptrace_recorder.requests
    assert _visible(malformed.hooks)[-1] == "got_first_response_byte"
    assert malformed.status is None and malformed.error is first


@pytest.mark.parametrize("mode", MODES)
def test_slow_trickle_within_the_read_timeout(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    trickle = [Send(head[:10]), Sleep(0.05), Send(head[10:]), Sleep(0.05)]
    trickle += [Send(b"tri"), Sleep(0.05), Send(b"ckl")]
    raw.script([ReadHead(), *trickle, ReadHead(), OK])  # one keep-alive connection
    first, second = _get_twice(mode, raw, timeout=2)
    assert first.text == "trickl" and second.text == "fine"
    slow, again = httptrace_recorder.requests
    bytes_at = slow.getcall("got_first_response_byte").time
    assert slow.getcall("wrote_request").time < bytes_at < slow.closed_at  # type: ignore[operator]
    assert "put_idle_conn" in slow.hooks
    assert again.got_conn is not None and again.got_conn.reused


@pytest.mark.parametrize("mode", MODES)
def test_slow_trickle_past_the_read_timeout(
    mode: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Send(b"HTTP/1.1 200 OK\r\n"), Sleep(1.0)], [ReadHead(), OK])
    first, second = _get_twice(mode, raw, timeout=0.2)
    assert isinstance(first, httpx.ReadTimeout)
    assert second.text == "fine"
    slow, _ = httptrace_recorder.requests
    assert "got_first_response_byte" in slow.hooks  # the first bytes did arrive
    assert slow.status is None and isinstance(slow.error, httpx.ReadTimeout)


def test_failing_test_mid_request_does_not_leak_into_the_next(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_fails_mid_stream(httptrace_recorder, httptrace_server):
            client = httptrace_server.client()
            with client.stream("GET", httptrace_server.url("/stream/20")) as r:
                for _ in r.iter_raw():
                    raise RuntimeError("the test fails in the middle of a body")

        def test_next_records_only_its_own(httptrace_recorder, httptrace_server):
            with httptrace_server.client() as client:
                client.get(httptrace_server.url("/bytes/5"))
            (request,) = httptrace_recorder.requests
            assert request.url.endswith("/bytes/5")
            assert all(e.request is request for e in httptrace_recorder.events)
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
