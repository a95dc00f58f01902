"""What the records claim is what happened on the wire (issue: a first week of real
use): retried attempts end on their own, a refused dial opens no connection, HTTP/2
header fields are those h2 sent, and the "made at" line is the user's."""

from __future__ import annotations

import itertools

import httpx
import pytest

from pytest_httptrace import assert_concurrent, assert_connections_opened
from pytest_httptrace.recorder import Recorder
from pytest_httptrace.server import TestServer

httpx_retries = pytest.importorskip("httpx_retries")


def test_retried_attempts_are_sequential_and_made_at_the_users_line(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    retry = httpx_retries.Retry(total=2, backoff_factor=0.0, backoff_jitter=0.0)
    transport = httpx_retries.RetryTransport(
        transport=httpx.HTTPTransport(verify=httptrace_server.ssl_context()),
        retry=retry,
    )
    with httptrace_server.client(transport=transport) as client:
        response = client.get("/status/503")
    assert response.status_code == 503
    first, second, third = httptrace_recorder.requests
    assert first.attempts == [first, second, third]  # one logical request
    for earlier, later in ((first, second), (second, third)):
        assert earlier.returned_at is not None and later.started_at is not None
        assert earlier.returned_at <= later.started_at
        with pytest.raises(AssertionError, match="not in flight at the same time"):
            assert_concurrent(earlier, later)
    assert first.origin is not None and first.origin.startswith(__file__)
    assert first.via == ("httpx_retries",)
    assert first.made_at is not None and first.made_at.endswith("(via httpx_retries)")


def test_redirect_hops_end_before_the_next_starts(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    with httptrace_server.client(follow_redirects=True) as client:
        client.get("/redirect/2").raise_for_status()
    hops = httptrace_recorder.requests
    assert len(hops) == 3
    for earlier, later in itertools.pairwise(hops):
        assert earlier.returned_at is not None and later.started_at is not None
        assert earlier.returned_at <= later.started_at
    last = hops[-1].returned_at
    assert last is not None and all(h.returned_at <= last for h in hops)  # type: ignore[operator]


def test_a_refused_dial_opens_no_connection(httptrace_recorder: Recorder) -> None:
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ConnectError):
        client.get("http://127.0.0.1:1/")
    [request] = httptrace_recorder.requests
    assert request.hooks == ["get_conn", "connect_start", "connect_done"]
    assert request.connection is None
    assert httptrace_recorder.connections == []
    assert_connections_opened(httptrace_recorder.requests, 0)


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_header_fields_are_what_the_server_received(
    http2: bool, httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    with httptrace_server.client(http2=http2) as client:
        client.get("/", headers={"X-Trace": "yes", "Cookie": "a=1"})
    [request] = httptrace_recorder.requests
    sent = [
        (e.args["key"].lower(), e.args["values"][0])
        for e in request.getcalls("wrote_header_field")
    ]
    [seen] = httptrace_server.log.requests
    received = [(k, v) for k, v in seen.headers if not k.startswith(":")]
    if http2:
        assert ("connection", "keep-alive") not in sent  # h2 strips it (RFC 9113)
        assert [k for k, _ in sent[:4]] == [":method", ":authority", ":scheme", ":path"]
        # hypercorn hands the app :authority as a leading Host header.
        sent = [("host", sent[1][1])] + [(k, v) for k, v in sent if k[0] != ":"]
    else:
        assert ("connection", "keep-alive") in sent
    assert sent == received


def test_redirect_hops_and_retries_are_one_logical_request(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    """Issue "beyond Go" item 4: the attempts of one call are grouped (a view on
    top: every attempt keeps its own record, connection and hooks)."""
    from pytest_httptrace import render_timeline

    with httptrace_server.client(follow_redirects=True) as client:
        client.get("/redirect/2").raise_for_status()
        client.get("/").raise_for_status()
    *hops, alone = httptrace_recorder.requests
    assert [r.status for r in hops[0].attempts] == [302, 302, 200]
    assert all(r.attempts == hops for r in hops)
    assert [r.attempt for r in hops] == [1, 2, 3]
    assert alone.attempts == [alone] and alone.attempt == 1
    assert "attempt 2 of 3: #1, #2, #3" in render_timeline(hops)
    assert "attempt" not in render_timeline([alone]).splitlines()[1]


def test_urllib3_retries_and_aiohttp_redirects_group_their_attempts(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    import asyncio

    with httptrace_server.requests_session() as session:
        session.get(httptrace_server.url("/redirect/1")).raise_for_status()

    async def main() -> None:
        async with (
            httptrace_server.aiohttp_session() as s,
            s.get("/redirect/1") as response,
        ):
            await response.read()

    asyncio.run(main())
    requests_hops = [
        r for r in httptrace_recorder.requests if r.source.name == "urllib3"
    ]  # type: ignore[union-attr]
    aiohttp_hops = [
        r for r in httptrace_recorder.requests if r.source.name == "aiohttp"
    ]  # type: ignore[union-attr]
    assert [r.status for r in requests_hops[0].attempts] == [302, 200]
    assert [r.status for r in aiohttp_hops[0].attempts] == [302, 200]


def test_the_line_is_found_from_the_transports_caller_and_no_frame_is_kept(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    # The source hands the recorder its caller's frame (the walk for the user's
    # line starts there) only while the call runs: a record keeps no frame.
    with httptrace_server.client() as client:
        client.get("/")
        with client.stream("GET", "/stream/2") as response:
            response.read()
    for record in httptrace_recorder.requests:
        assert record.origin is not None and record.origin.startswith(__file__)
        assert record.via == ()
        assert record._traced is not None and record._traced.entry_frame is None
