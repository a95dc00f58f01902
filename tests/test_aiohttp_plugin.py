"""The plugin on aiohttp records, unchanged: a response never released is a leak
that points at the user's line."""

from __future__ import annotations

import pytest

LEAKY = """
    import asyncio

    KEPT = []  # the response stays unreleased (and uncollected) through teardown

    def test_leaky(httptrace_recorder, httptrace_server):
        async def main():
            session = httptrace_server.aiohttp_session()
            response = await session.get("/stream/2")
            assert response.status == 200
            KEPT.append(response)
            await session.close()  # the response itself is never released

        asyncio.run(main())
"""


def test_an_unreleased_aiohttp_response_is_a_leak_at_the_users_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest_subprocess(
        "-p", "httptrace", "-W", "default::pytest_httptrace.HTTPTraceLeakWarning"
    )
    result.assert_outcomes(passed=1, warnings=1)
    name = "test_an_unreleased_aiohttp_response_is_a_leak_at_the_users_line.py"
    result.stdout.fnmatch_lines(
        [
            f"*{name}:8: HTTPTraceLeakWarning: 1 response was never closed*",
            f"*GET https://localhost:*/stream/2*made at {name}:8*",
        ]
    )


def test_a_released_aiohttp_response_is_no_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.httptrace(leaks="error")
        def test_released(httptrace_recorder, httptrace_server):
            async def main():
                async with httptrace_server.aiohttp_session() as session:
                    async with session.get("/stream/2") as response:
                        await response.read()
                await asyncio.sleep(0.05)

            asyncio.run(main())
            assert len(httptrace_recorder.requests) == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=1)
