"""Benchmark: recording every hook of aiohttp, against aiohttp as shipped.

``python -m benchmarks.aiohttp_overhead [--quick] [--out FILE]``
(or ``python -m benchmarks aiohttp_overhead``)

Our test server runs in its own process (`benchmarks._serve`). This process keeps
warm ``aiohttp.ClientSession`` objects on one event loop, each with its own pooled
keep-alive TLS connection, and in every round runs one batch of GETs per variant,
variants taking turns in rotated order:

- ``plain``, ``plain_b``: aiohttp as shipped, no trace anywhere (``plain_b`` is a
  second session of the same kind: an A/A control, the noise floor);
- ``noop_traceconfig``: a session built with ``trace_configs=[aiohttp.TraceConfig()]``
  (no receivers), no trace of ours: the floor of aiohttp's own tracing mechanism,
  which awaits every signal of every request;
- ``recording``: the ``plain`` session's requests while a `Recorder` records every
  hook (installed before the batch, removed after it: between batches aiohttp is as
  shipped again).

Each GET is timed alone (wall clock) and each batch's CPU time is taken. Reported per
variant: the median per-request time with quartiles, its ratio to ``plain``, the
median of the per-round ratios with min, max and confidence interval, and the CPU
ratio. Full run: 10 rounds x 100 GETs = 1000 timed GETs per variant.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import time
from typing import Any

from ._common import Result, bench_main, ratio_summary, rotated, summary
from ._serve import ServerProcess

VARIANTS = ("plain", "plain_b", "noop_traceconfig", "recording")
TARGET = 1.05
WARM = 5


async def _run(url: str, ca: str, rounds: int, n: int) -> dict[str, Any]:
    import aiohttp

    from pytest_httptrace import Recorder

    def session(**kwargs: Any) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=ca)
        connector = aiohttp.TCPConnector(ssl=context, limit=1)
        return aiohttp.ClientSession(url, connector=connector, **kwargs)

    sessions = {
        "plain": session(),
        "plain_b": session(),
        "noop_traceconfig": session(trace_configs=[aiohttp.TraceConfig()]),
    }
    sessions["recording"] = sessions["plain"]
    times: dict[str, list[int]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[int]] = {v: [] for v in VARIANTS}
    medians: dict[str, list[float]] = {v: [] for v in VARIANTS}
    events: list[float] = []
    clock = time.perf_counter_ns

    async def get(s: aiohttp.ClientSession) -> None:
        async with s.get("/") as response:
            body = await response.read()
        if response.status != 200 or body != b"hello":
            raise RuntimeError(f"unexpected response {response.status} {body!r}")

    async def batch(variant: str) -> None:
        s = sessions[variant]
        recorder = Recorder.start() if variant == "recording" else None
        try:
            for _ in range(WARM):  # untimed: the connection and caches warm up
                await get(s)
            if recorder is not None:
                recorder.clear()
            mine: list[int] = []
            cpu0 = time.thread_time_ns()
            for _ in range(n):
                t0 = clock()
                await get(s)
                mine.append(clock() - t0)
            cpu[variant].append((time.thread_time_ns() - cpu0) // n)
        finally:
            if recorder is not None:
                recorder.stop()
        if recorder is not None:
            if len(recorder.requests) != n:
                raise RuntimeError(f"recorded {len(recorder.requests)} of {n} requests")
            events.append(len(recorder.events) / n)
        times[variant].extend(mine)
        medians[variant].append(statistics.median(mine))

    try:
        for round_no in range(rounds):
            for variant in rotated(VARIANTS, round_no):
                await batch(variant)
    finally:
        for s in {id(s): s for s in sessions.values()}.values():
            await s.close()
        await asyncio.sleep(0.05)

    base = summary(times["plain"])["median"]
    rows = []
    for variant in VARIANTS:
        s = summary([t / 1e3 for t in times[variant]])
        per_round = [
            m / b for m, b in zip(medians[variant], medians["plain"], strict=True)
        ]
        cpu_ratio = [c / b for c, b in zip(cpu[variant], cpu["plain"], strict=True)]
        rows.append(
            {
                "variant": variant,
                "us": s,
                "ratio": s["median"] * 1e3 / base,
                "round_ratio": ratio_summary(per_round),
                "cpu_us": statistics.median(cpu[variant]) / 1e3,
                "cpu_ratio": ratio_summary(cpu_ratio),
                "target": TARGET if variant == "recording" else None,
            }
        )
    return {
        "rounds": rounds,
        "per_round": n,
        "events_per_request": statistics.median(events) if events else 0,
        "rows": rows,
    }


def run(quick: bool) -> Result:
    from importlib.metadata import version

    rounds, n = (2, 10) if quick else (10, 100)
    with ServerProcess.start() as server:
        result = asyncio.run(_run(server.url, server.ca, rounds, n))
    result["aiohttp"] = version("aiohttp")
    return result


if __name__ == "__main__":
    bench_main("aiohttp_overhead", run)
