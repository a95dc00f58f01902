"""Pool waits (issue: beyond Go's hooks, item 3): how long a request waited for a
connection of the pool, which requests held the pool meanwhile, and a bound on it,
against the real server, for httpx and aiohttp."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from pytest_httptrace import assert_pool_wait, pool_holders, pool_wait
from pytest_httptrace.recorder import Recorder
from pytest_httptrace.server import TestServer


def test_a_pool_timeout_names_the_request_that_held_the_pool(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.2)
    with (
        httptrace_server.client(limits=limits, timeout=timeout) as client,
        client.stream("GET", "/stream/2") as response,
    ):
        with pytest.raises(httpx.PoolTimeout):
            client.get("/")
        response.read()
    held, starved = httptrace_recorder.requests
    assert pool_wait(starved) >= 0.2
    assert pool_wait(held) < 0.2  # it dialed at once
    assert pool_holders(starved) == [held]
    with pytest.raises(AssertionError) as info:
        assert_pool_wait(httptrace_recorder, at_most=0.05)
    message = str(info.value)
    first = message.splitlines()[0]
    assert (
        first == "1 request waited longer than 50.000 ms for a connection of the pool:"
    )
    assert f"  #2 GET {httptrace_server.url('/')} waited " in message
    assert ", then failed with PoolTimeout" in message
    assert (
        f"    held by #1 GET {httptrace_server.url('/stream/2')} (gave it back at"
        in (message)
    )
    assert "test_pool_wait.py:" in message  # made at the user's line


def test_a_thread_waits_for_the_one_connection(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    limits = httpx.Limits(max_connections=1)
    with httptrace_server.client(limits=limits) as client:
        first = threading.Thread(target=client.get, args=("/delay/0.3",))
        first.start()
        while not httptrace_recorder.getcalls("got_conn"):
            threading.Event().wait(0.005)
        client.get("/")
        first.join()
    slow, waiting = httptrace_recorder.requests
    assert pool_wait(waiting) >= 0.15
    assert pool_holders(waiting) == [slow]
    assert_pool_wait([slow], at_most=0.05)  # the first never waited
    assert_pool_wait(httptrace_recorder, at_most=5.0)


def test_aiohttp_limit_one_waits_too(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=1, ssl=httptrace_server.ssl_context())
        async with httptrace_server.aiohttp_session(connector=connector) as session:

            async def get(path: str) -> None:
                async with session.get(path) as response:
                    await response.read()

            slow = asyncio.create_task(get("/delay/0.3"))
            await asyncio.sleep(0.1)
            await get("/")
            await slow

    asyncio.run(main())
    slow, waiting = httptrace_recorder.requests
    assert pool_wait(waiting) >= 0.1
    assert pool_holders(waiting) == [slow]
    with pytest.raises(AssertionError, match=r"held by #1 GET .*/delay/0\.3"):
        assert_pool_wait(httptrace_recorder, at_most=0.05)


@pytest.mark.parametrize("bad", ["0.1", None, -1, float("nan"), True])
def test_a_bound_that_is_not_seconds_is_refused(
    bad: object, httptrace_recorder: Recorder
) -> None:
    with pytest.raises(TypeError, match=r"at_most=seconds, a finite number >= 0"):
        assert_pool_wait(httptrace_recorder, at_most=bad)  # type: ignore[arg-type]


def test_the_waterfall_draws_a_wait_for_the_pool(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    from pytest_httptrace.waterfall import render_waterfall, request_data

    limits = httpx.Limits(max_connections=1)
    with httptrace_server.client(limits=limits) as client:
        with client.stream("GET", "/stream/2?gap=0.1") as response:
            waiter = threading.Thread(target=lambda: client.get("/").read())
            waiter.start()
            response.read()  # gives the one connection back
        waiter.join(5)
    held, waited = httptrace_recorder.requests
    assert pool_wait(waited) >= 0.05 and pool_wait(held) < 0.001
    text = render_waterfall([request_data(held), request_data(waited)], width=100)
    first, second = text.split("\n\n")[:2]
    assert "pool wait" not in first  # it dialed at once
    rows = [line for line in second.splitlines() if line.startswith("  pool wait")]
    assert len(rows) == 1 and "█" in rows[0]
    assert second.index("  pool wait") < second.index("  send")  # before the others
