"""Benchmark 2: the cold path, a first request on a new connection (DNS + TCP + TLS).

``python -m benchmarks.cold [--quick] [--out FILE]``

Our test server runs in its own process. For every sample a new httpx client (its SSL
context made beforehand, untimed) sends one GET to ``https://localhost:PORT/``: name
resolution, TCP connect, TLS handshake (ALPN), request and response are all timed.
Traced samples run with a `Recorder` recording every hook (started before the client
is made, stopped after it is closed, both untimed); untraced ones with httpx as shipped.
``traced`` is the first request after the recorder started (as the first request of a
test that records); ``traced_warm`` a second new client under the same recorder (the
instrumentation installed a moment ago, its code paths run once). Untraced and traced
samples alternate, in rotated order, for sync and async clients over HTTP/1.1 and
HTTP/2. Full run: 30 samples of each.

Reported: the median time of the first request with its quartiles and the traced /
untraced ratio (of the medians, and per round: median, min, max, with the confidence
interval of its median; the target, ``COLD_TARGET``, applies to ``traced``); the
client process's CPU time of each first request (its median, and the added CPU over
untraced), with ``empty_trace`` beside them: an empty ``ClientTrace()`` in effect, so
the instrumentation's own work (its wrappers, the dial's hooks fired to no one)
apart from the recorder's; and from the recorded hooks, where the time of a traced
first request goes (DNS, connect, TLS, until the first response byte).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import httpx

from ._common import COLD_TARGET, Result, bench_main, ratio_summary, rotated, summary
from ._serve import ServerProcess

CONFIGS = ("sync-h1", "sync-h2", "async-h1", "async-h2")
VARIANTS = ("untraced", "empty_trace", "traced", "traced_warm")
UNITS = ("untraced", "empty_trace", "traced")


def _context(ca: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    return context


def _first_request(
    config: str, url: str, ca: str, loop: asyncio.AbstractEventLoop
) -> tuple[int, int]:
    """Nanoseconds of one first GET on a new client: wall time, and the CPU time of
    this process (its threads too: anyio resolves names in a worker thread)."""
    http2 = config.endswith("h2")
    expected = "HTTP/2" if http2 else "HTTP/1.1"
    kwargs: dict[str, Any] = {
        "verify": _context(ca),
        "http2": http2,
        "trust_env": False,
    }
    if config.startswith("sync"):
        with httpx.Client(**kwargs) as client:
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            response = client.get(url)
            elapsed = time.perf_counter_ns() - t0
            cpu = time.process_time_ns() - c0
    else:

        async def go() -> tuple[httpx.Response, int, int]:
            async with httpx.AsyncClient(**kwargs) as client:
                c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                response = await client.get(url)
                elapsed = time.perf_counter_ns() - t0
                return response, elapsed, time.process_time_ns() - c0

        response, elapsed, cpu = loop.run_until_complete(go())
    if response.status_code != 200 or response.http_version != expected:
        raise RuntimeError(f"unexpected response {response!r}")
    return elapsed, cpu


def _phases(recorder: Any) -> dict[str, float]:
    """Where the time of the recorded first request went (ms, from get_conn)."""
    (request,) = recorder.requests
    first: dict[str, float] = {}
    for event in request.events:
        first.setdefault(event.hook, event.time)
    t0 = first["get_conn"]
    return {
        "dns": (first["dns_done"] - first["dns_start"]) * 1e3,
        "connect": (first["connect_done"] - first["connect_start"]) * 1e3,
        "tls": (first["tls_handshake_done"] - first["tls_handshake_start"]) * 1e3,
        "got_conn": (first["got_conn"] - t0) * 1e3,
        "first_byte": (first["got_first_response_byte"] - t0) * 1e3,
    }


def run(quick: bool) -> Result:
    from pytest_httptrace import ClientTrace, Recorder, with_client_trace

    rounds = 2 if quick else 30
    times: dict[str, dict[str, list[int]]] = {
        c: {v: [] for v in VARIANTS} for c in CONFIGS
    }
    cpu: dict[str, dict[str, list[int]]] = {
        c: {v: [] for v in VARIANTS} for c in CONFIGS
    }
    phases: dict[str, list[dict[str, float]]] = {c: [] for c in CONFIGS}
    loop = asyncio.new_event_loop()
    try:
        with ServerProcess.start() as server:
            url = server.url + "/"

            def sample(config: str, variant: str) -> None:
                elapsed, used = _first_request(config, url, server.ca, loop)
                times[config][variant].append(elapsed)
                cpu[config][variant].append(used)

            for config in CONFIGS:  # one untimed sample each: imports, caches
                _first_request(config, url, server.ca, loop)
            for r in range(rounds):
                for config in CONFIGS:
                    for unit in rotated(UNITS, r):
                        if unit == "untraced":
                            sample(config, "untraced")
                        elif unit == "empty_trace":
                            with with_client_trace(ClientTrace()):
                                sample(config, "empty_trace")
                        else:
                            with Recorder.start() as recorder:
                                sample(config, "traced")
                                phases[config].append(_phases(recorder))
                                recorder.clear()
                                sample(config, "traced_warm")
    finally:
        loop.close()
    rows = []
    for config in CONFIGS:
        base = times[config]["untraced"]
        base_cpu = summary(cpu[config]["untraced"])["median"]
        for variant in VARIANTS:
            s = summary(times[config][variant])
            paired = [a / b for a, b in zip(times[config][variant], base, strict=True)]
            used = summary(cpu[config][variant])["median"]
            row: dict[str, Any] = {
                "config": config,
                "variant": variant,
                "samples": s["n"],
                "median_ms": s["median"] / 1e6,
                "p25_ms": s["p25"] / 1e6,
                "p75_ms": s["p75"] / 1e6,
                "ratio": s["median"] / summary(base)["median"],
                "round_ratio": ratio_summary(paired),
                "cpu_ms": used / 1e6,
                "cpu_ratio": used / base_cpu,
                "cpu_added_ms": (used - base_cpu) / 1e6,
            }
            if variant == "traced":
                row["target"] = COLD_TARGET
                row["phases_ms"] = {
                    k: summary([p[k] for p in phases[config]])["median"]
                    for k in phases[config][0]
                }
            rows.append(row)
    return {"rounds": rounds, "configs": list(CONFIGS), "rows": rows}


if __name__ == "__main__":
    bench_main("cold", run)
