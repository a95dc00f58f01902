"""``--httptrace-report`` on aiohttp records: one track per connection, the phases
and the hooks, as for httpx (the report has no aiohttp-specific code)."""

from __future__ import annotations

import json

import pytest

SUITE = """
    import asyncio

    def test_reuse_then_close(httptrace_server):
        async def main():
            async with httptrace_server.aiohttp_session() as session:
                for path in ("/", "/", "/close", "/"):
                    async with session.get(path) as response:
                        await response.read()
            await asyncio.sleep(0.05)

        asyncio.run(main())
"""


def test_report_of_aiohttp_requests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "httptrace", "-W", "error", "--httptrace-report=run"
    )
    result.assert_outcomes(passed=1)
    trace = json.loads((pytester.path / "run.json").read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] != "M"]
    threads = {
        e["tid"]: e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert sorted(threads) == [1, 2]
    assert threads[1].startswith("connection #1 · HTTP/1.1 · 127.0.0.1:")
    requests = [(e["tid"], e["name"]) for e in events if e["cat"] == "request"]
    assert requests == [
        (1, "GET / → 200"),
        (1, "GET / → 200"),
        (1, "GET /close → 200"),
        (2, "GET / → 200"),
    ]
    phases = {e["name"] for e in events if e["cat"] == "phase"}
    assert {"dns", "connect", "tls", "send", "wait", "transfer"} <= phases
    page = (pytester.path / "run.html").read_text()
    assert "test_reuse_then_close" in page
