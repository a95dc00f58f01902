"""Benchmark 5: scale. Memory per recorded request; assertion time against event count.

``python -m benchmarks.scale [--quick] [--out FILE]``

1. Memory (tracemalloc, after a full collection) held by a recording `Recorder`:

   - *synthetic*: 10 000 requests whose hooks are fired through the real dispatch
     path (`TracedRequest.fire` with a started recorder), each the hooks of a
     keep-alive HTTP/1.1 GET as httpx fires them (11 calls: ``get_conn``,
     ``got_conn``, 5 x ``wrote_header_field``, ``wrote_headers``, ``wrote_request``,
     ``got_first_response_byte``, ``put_idle_conn``); the first request also dials
     (DNS, connect, TLS). Checkpoints at 1k, 5k and 10k requests show the growth.
   - *real*: 2 000 keep-alive TLS GETs (sync client, HTTP/1.1) to our server in
     another process, recorded; what a request really costs, with everything the
     records keep alive. Then 20 uploads of 1 MiB (``POST /echo``), recorded: how much
     of the bodies the recording keeps alive. Then 50 clients, each closed after one
     request, untraced and traced (a recorder each, stopped and dropped): how many
     httpcore connections are still alive afterwards. The target,
     ``MEMORY_TARGET_BYTES`` per request, applies to the real figure (the larger: it
     counts everything a recorded request keeps alive) and to the synthetic one.

2. Time of `assert_hook_sequence` and of the leak check (`find_leaks`,
   `assert_no_leaks`) on recordings of 1k, 10k and 100k events (synthetic, as above),
   median of 5 runs each:

   - ``sequence: wildcard``: ``[get_conn, ..., put_idle_conn]`` over all the events;
   - ``sequence: exact``: a pattern naming every hook recorded (one item per event);
   - ``sequence: per request``: ``assert_hook_sequence(r, [...])`` for every request;
   - ``sequence: failing``: a pattern that fails at the last event, message included;
   - ``sequence: never ran``: the first half of the exact pattern, ``...`` and a hook
     that never ran, message included;
   - ``find_leaks`` / ``assert_no_leaks`` over all the requests.

Linear growth shows as a constant time per event across the three sizes. The
failure messages are windowed: their size (``message_chars``) stays under
``MESSAGE_TARGET_CHARS`` at every size.

3. Retention over a session: ``python -m pytest -p httptrace`` on 200 generated tests
   that each request ``httptrace_recorder`` and record 50 synthetic requests; at the
   end of the session (after a full collection) a conftest counts the `Recorder`
   objects still alive, the events they hold and the growth of the resident memory.
   A recorder is only needed until its test has been reported.
"""

from __future__ import annotations

import gc
import json
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import (
    MEMORY_TARGET_BYTES,
    MESSAGE_TARGET_CHARS,
    Result,
    bench_main,
    child_env,
)
from ._serve import ServerProcess

KEEPALIVE_HOOKS = 11
HEADERS = [
    ("host", "localhost:8443"),
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate"),
    ("connection", "keep-alive"),
    ("user-agent", "python-httpx/0.28.1"),
]


def fire_requests(n: int) -> None:
    """Fire the hooks of ``n`` keep-alive GETs (the first one dials) through the real
    dispatch path, as the httpx source would; recorders started now record them."""
    from pytest_httptrace.trace import (
        DNSDoneInfo,
        DNSStartInfo,
        GotConnInfo,
        TLSConnectionState,
        TracedConnection,
        TracedRequest,
        WroteRequestInfo,
        current_chain,
    )

    conn = TracedConnection.of(object(), id=1, protocol="HTTP/1.1")
    tls = TLSConnectionState(
        version="TLSv1.3", negotiated_protocol="http/1.1", handshake_complete=True
    )
    for i in range(n):
        st = TracedRequest(
            method="GET", url="https://localhost:8443/", chain=current_chain()
        )
        st.connection = conn
        st.fire("get_conn", "localhost:8443")
        if i == 0:
            st.fire("dns_start", DNSStartInfo(host="localhost"))
            st.fire("dns_done", DNSDoneInfo(addrs=["127.0.0.1"]))
            st.fire("connect_start", "tcp", "127.0.0.1:8443")
            st.fire("connect_done", "tcp", "127.0.0.1:8443", None)
            st.fire("tls_handshake_start")
            st.fire("tls_handshake_done", tls, None)
        st.fire(
            "got_conn",
            GotConnInfo(conn=conn.conn, reused=i > 0, was_idle=i > 0, idle_time=1e-4),
        )
        for key, value in HEADERS:
            st.fire("wrote_header_field", key, [value])
        st.fire("wrote_headers")
        st.fire("wrote_request", WroteRequestInfo(err=None))
        st.fire("got_first_response_byte")
        st.status = 200
        st.returned_at = time.monotonic()
        st.fire("put_idle_conn", None)
        st.closed_at = time.monotonic()


def _traced_memory() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def memory_synthetic(total: int, checkpoints: list[int]) -> list[dict[str, float]]:
    from pytest_httptrace import Recorder

    fire_requests(1)  # imports, caches: outside the measurement
    tracemalloc.start()
    try:
        recorder = Recorder.start()
        base = _traced_memory()
        rows = []
        done = 0
        for point in checkpoints:
            fire_requests(point - done)
            done = point
            used = _traced_memory() - base
            rows.append(
                {
                    "requests": point,
                    "events": len(recorder.events),
                    "bytes": used,
                    "bytes_per_request": used / point,
                    "bytes_per_event": used / len(recorder.events),
                }
            )
        recorder.stop()
        assert done == total
        del recorder
        rows[-1]["bytes_after_release"] = _traced_memory() - base
    finally:
        tracemalloc.stop()
    return rows


def _live(cls: type) -> int:
    return sum(type(o) is cls for o in gc.get_objects())


def connection_retention(url: str, ca: str, clients: int) -> dict[str, int]:
    """Closed clients, one request each: how many httpcore connections stay alive
    after everything was dropped, untraced and traced (a recorder per client)."""
    import httpcore
    import httpx

    from pytest_httptrace import Recorder

    result = {"clients": clients}
    for traced in (False, True):
        gc.collect()
        before = _live(httpcore.HTTPConnection)
        for _ in range(clients):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(ca)
            recorder = Recorder.start() if traced else None
            with httpx.Client(base_url=url, verify=context, trust_env=False) as client:
                client.get("/").raise_for_status()
            if recorder is not None:
                recorder.stop()
            del recorder
        gc.collect()
        key = "traced_alive" if traced else "untraced_alive"
        result[key] = _live(httpcore.HTTPConnection) - before
    return result


def memory_real(n: int, uploads: int, upload_size: int) -> dict[str, Any]:
    import httpx

    from pytest_httptrace import Recorder

    with ServerProcess.start() as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(server.ca)
        with httpx.Client(
            base_url=server.url, verify=context, trust_env=False
        ) as client:
            for _ in range(20):  # warm: connection, pools, caches
                client.get("/")
            with Recorder.start():
                client.get("/")
            tracemalloc.start()
            try:
                base = _traced_memory()
                recorder = Recorder.start()
                for _ in range(n):
                    client.get("/").raise_for_status()
                recorder.stop()
                used = _traced_memory() - base
                events = len(recorder.events)
                if len(recorder.requests) != n:
                    raise RuntimeError(f"recorded {len(recorder.requests)} of {n}")
                del recorder
                released = _traced_memory() - base
                # Uploads: does a recording keep the request bodies alive?
                body_base = _traced_memory()
                recorder = Recorder.start()
                for _ in range(uploads):
                    client.post("/echo", content=bytes(upload_size)).raise_for_status()
                recorder.stop()
                body_held = _traced_memory() - body_base
                del recorder
            finally:
                tracemalloc.stop()
        retention = connection_retention(server.url, server.ca, 50 if n > 100 else 3)
    return {
        "requests": n,
        "events": events,
        "bytes": used,
        "bytes_per_request": used / n,
        "bytes_per_event": used / events,
        "bytes_after_release": released,
        "uploads": uploads,
        "upload_bytes": uploads * upload_size,
        "upload_held_bytes": body_held,
        "connections": retention,
    }


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _time_cases(size: int, repeat: int) -> list[dict[str, Any]]:
    from pytest_httptrace import Recorder
    from pytest_httptrace.assertions import (
        OPT_IN_HOOKS,
        assert_hook_sequence,
        assert_no_leaks,
        find_leaks,
    )

    with Recorder.start() as recorder:
        fire_requests(max(1, round(size / KEEPALIVE_HOOKS)))
    events = len(recorder.events)
    compared: list[Any] = [
        e.hook for e in recorder.events if e.hook not in OPT_IN_HOOKS
    ]
    per_request: list[Any] = [
        "get_conn",
        ...,
        "got_conn",
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "put_idle_conn",
    ]
    message_chars: dict[Callable[[], Any], int] = {}

    def failing(pattern: list[Any]) -> Callable[[], None]:
        def fails() -> None:
            try:
                assert_hook_sequence(recorder, pattern)
            except AssertionError as error:
                message = str(error)
                if "got_100_continue" not in message:
                    raise
                message_chars[fails] = len(message)
            else:
                raise RuntimeError("the failing pattern passed")

        return fails

    def per_request_all() -> None:
        for r in recorder.requests:
            assert_hook_sequence(r, per_request)

    cases: dict[str, Callable[[], Any]] = {
        "sequence: wildcard": lambda: assert_hook_sequence(
            recorder, ["get_conn", ..., "put_idle_conn"]
        ),
        "sequence: exact": lambda: assert_hook_sequence(recorder, compared),
        "sequence: per request": per_request_all,
        "sequence: failing": failing([*compared[:-1], "got_100_continue"]),
        "sequence: never ran": failing(
            [*compared[: len(compared) // 2], ..., "got_100_continue"]
        ),
        "find_leaks": lambda: find_leaks(recorder),
        "assert_no_leaks": lambda: assert_no_leaks(recorder),
    }
    rows = []
    for name, fn in cases.items():
        seconds = _median_time(fn, repeat)
        row = {
            "case": name,
            "events": events,
            "requests": len(recorder.requests),
            "ms": seconds * 1e3,
            "us_per_event": seconds * 1e6 / events,
        }
        if fn in message_chars:
            row["message_chars"] = message_chars[fn]
        rows.append(row)
    return rows


def assertion_times(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    return [row for size in sizes for row in _time_cases(size, repeat)]


_RETENTION_CONFTEST = """
import gc, json, os
import pytest

def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def pytest_configure(config):
    config._bench_rss = _rss()

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    gc.collect()
    recorders = [o for o in gc.get_objects() if type(o).__name__ == "Recorder"]
    print("RETENTION " + json.dumps({
        "recorders_alive": len(recorders),
        "events_held": sum(len(r._events) for r in recorders),
        "rss_growth_bytes": _rss() - session.config._bench_rss,
    }))
"""


def retention(tests: int, per_test: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="httptrace-bench-retention-") as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "conftest.py").write_text(_RETENTION_CONFTEST)
        (root / "test_retention.py").write_text(
            "import pytest\nfrom benchmarks.scale import fire_requests\n\n\n"
            f'@pytest.mark.parametrize("i", range({tests}))\n'
            "def test_records(httptrace_recorder, i):\n"
            f"    fire_requests({per_test})\n"
            f"    assert len(httptrace_recorder.requests) == {per_test}\n"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "httptrace"],
            cwd=root,
            capture_output=True,
            text=True,
            env=child_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
            timeout=300,
        )
    found = re.findall(r"RETENTION (\{.*\})", proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"retention run failed ({proc.returncode}):\n{proc.stdout}")
    result: dict[str, Any] = json.loads(found[-1])
    result.update(
        tests=tests,
        requests_per_test=per_test,
        command="PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q -s -p httptrace "
        f"({tests} tests x {per_test} recorded requests)",
    )
    return result


def run(quick: bool) -> Result:
    if quick:
        total, checkpoints, real, sizes, repeat = 200, [100, 200], 50, [1000, 2000], 1
    else:
        total, checkpoints = 10_000, [1000, 5000, 10_000]
        real, sizes, repeat = 2000, [1000, 10_000, 100_000], 5
    synthetic = memory_synthetic(total, checkpoints)
    times = assertion_times(sizes, repeat)
    growth: dict[str, float] = {}
    for case in dict.fromkeys(r["case"] for r in times):
        series = [r for r in times if r["case"] == case]
        growth[case] = series[-1]["us_per_event"] / series[0]["us_per_event"]
    return {
        "retention": retention(*((10, 10) if quick else (200, 50))),
        "memory_synthetic": synthetic,
        "memory_real": memory_real(real, *((2, 65536) if quick else (20, 1 << 20))),
        "assertions": times,
        "growth_per_event": growth,
        "memory_target_bytes": MEMORY_TARGET_BYTES,
        "message_target_chars": MESSAGE_TARGET_CHARS,
    }


if __name__ == "__main__":
    bench_main("scale", run)
