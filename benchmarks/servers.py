"""Benchmark 4: our test server against what users build or pick today, in one run.

``python -m benchmarks.servers [--quick] [--out FILE]``

Servers (each started in a thread of this process, as a fixture would):

- ``httptrace``: ``start_server()``: hypercorn, TLS (trustme), HTTP/1.1 + HTTP/2;
- ``httptrace-plain``: ``start_server(tls=False)``, for a like-for-like comparison
  with the plain-HTTP server below;
- ``pytest-httpserver``: its ``HTTPServer`` with default settings (werkzeug, plain
  HTTP/1.0 since it is not threaded, ``/`` answered by ``expect_request``);
- ``trustme+uvicorn``: the fixture people write by hand (`UvicornTLSServer`): a
  trustme leaf in a temporary PEM, uvicorn serving a minimal ASGI app on
  ``127.0.0.1``, port 0, in a thread, stopped with ``should_exit``. (Handing uvicorn a
  socket from ``socket.create_server`` instead is a trap: asyncio sets
  ``TCP_NODELAY`` only on sockets made with ``proto=IPPROTO_TCP``, so every response
  of such a fixture waited ~40 ms for a delayed ACK when we tried it.)
- ``trustme+hypercorn``: the same by hand with hypercorn (`HypercornTLSServer`), to
  tell what hypercorn costs from what our server adds to it.

The CA is made once per session for all of them (a fixture would), and is not timed;
each start issues a new leaf certificate (timed, for both TLS servers). Per round, in
rotated order: start (until it accepts), first request of a new httpx client (TCP,
TLS, request), 20 keep-alive requests (median), stop. Then the load: 50 concurrent
keep-alive clients (`benchmarks._loadgen`, another process, HTTP/1.1) for at most
2 s and 100 000 requests, per server, in rotated order. Full run: 10 rounds of
start/stop, 3 of load.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from ._common import Result, bench_main, child_env, python_module, rotated, summary

KINDS = (
    "httptrace",
    "httptrace-plain",
    "pytest-httpserver",
    "trustme+uvicorn",
    "trustme+hypercorn",
)
KEEPALIVE = 20


class Running(Protocol):
    url: str  # of "/"
    ca_pem: str | None

    def client(self) -> httpx.Client: ...
    def stop(self) -> None: ...


# -- our server -----------------------------------------------------------------------


class OurServer:
    def __init__(self, ca: Any, ca_pem: str, *, tls: bool) -> None:
        from pytest_httptrace.server import start_server

        self.server = start_server(tls=tls, ca=ca)
        self.url = self.server.url("/")
        self.ca_pem = ca_pem if tls else None

    def client(self) -> httpx.Client:
        return self.server.client()

    def stop(self) -> None:
        self.server.stop()


# -- pytest-httpserver -----------------------------------------------------------------


class HTTPServerFixture:
    def __init__(self) -> None:
        from pytest_httpserver import HTTPServer

        # werkzeug logs every request at INFO; pytest would capture it, here it would
        # only cost time. Silenced, which flatters this server, not ours.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = HTTPServer()
        self.server.expect_request("/").respond_with_data("hello")
        self.server.start()
        self.url = self.server.url_for("/")
        self.ca_pem: str | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(trust_env=False)

    def stop(self) -> None:
        self.server.clear()
        self.server.stop()


# -- the hand-written trustme + uvicorn fixture ----------------------------------------


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: 200 ``hello``."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


class UvicornTLSServer:
    """What a user writes for a TLS test server: trustme + uvicorn in a thread."""

    def __init__(self, ca: Any, ca_pem: str) -> None:
        import uvicorn

        self.ca = ca
        self.ca_pem: str | None = ca_pem
        leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
        with leaf.private_key_and_cert_chain_pem.tempfile() as pem:
            config = uvicorn.Config(
                hello_app,
                host="127.0.0.1",
                port=0,
                ssl_certfile=pem,
                ssl_keyfile=pem,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
            self.server = uvicorn.Server(config)
            self.thread = threading.Thread(target=self.server.run, daemon=True)
            self.thread.start()
            while not self.server.started:
                if not self.thread.is_alive():
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.0005)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{port}/"

    def client(self) -> httpx.Client:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return httpx.Client(verify=context, trust_env=False)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _quiet_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    return logger


class HypercornTLSServer:
    """The same by hand with hypercorn: what our server is built on, without our
    additions (the connection log, routes, TLS context built in memory), to tell
    hypercorn's cost from ours."""

    def __init__(self, ca: Any, ca_pem: str) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        self.ca = ca
        self.ca_pem: str | None = ca_pem
        with socket.socket() as probe:  # a free port, as such fixtures find one
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.loop = asyncio.new_event_loop()
        self.shutdown = asyncio.Event()
        with leaf.private_key_and_cert_chain_pem.tempfile() as pem:
            config = Config()
            config.bind = [f"127.0.0.1:{port}"]
            config.certfile = config.keyfile = pem
            config.accesslog = None
            config.errorlog = _quiet_logger("bench.hypercorn")
            ssl_context = config.create_ssl_context()
        config.create_ssl_context = lambda: ssl_context  # type: ignore[method-assign]

        def run() -> None:
            self.loop.run_until_complete(
                serve(hello_app, config, shutdown_trigger=self.shutdown.wait)  # type: ignore[arg-type]
            )
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        while True:  # until it accepts
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except ConnectionRefusedError:
                if not self.thread.is_alive():
                    raise RuntimeError("hypercorn did not start") from None
                time.sleep(0.0005)
        self.url = f"https://127.0.0.1:{port}/"

    def client(self) -> httpx.Client:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return httpx.Client(verify=context, trust_env=False)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.shutdown.set)
        self.thread.join(10)


# -- the benchmark ---------------------------------------------------------------------


def _starter(kind: str, ca: Any, ca_pem: str) -> Callable[[], Running]:
    if kind == "httptrace":
        return lambda: OurServer(ca, ca_pem, tls=True)
    if kind == "httptrace-plain":
        return lambda: OurServer(ca, ca_pem, tls=False)
    if kind == "pytest-httpserver":
        return HTTPServerFixture
    if kind == "trustme+uvicorn":
        return lambda: UvicornTLSServer(ca, ca_pem)
    if kind == "trustme+hypercorn":
        return lambda: HypercornTLSServer(ca, ca_pem)
    raise ValueError(kind)


def _get(client: httpx.Client, url: str) -> int:
    t0 = time.perf_counter_ns()
    response = client.get(url)
    elapsed = time.perf_counter_ns() - t0
    if response.status_code != 200 or response.text != "hello":
        raise RuntimeError(f"unexpected response {response!r}: {response.text[:200]}")
    return elapsed


def _lifecycle(start: Callable[[], Running], keepalive: int) -> dict[str, float]:
    t0 = time.perf_counter_ns()
    server = start()
    started = time.perf_counter_ns() - t0
    try:
        with server.client() as client:
            first = _get(client, server.url)
            again = [_get(client, server.url) for _ in range(keepalive)]
    finally:
        t0 = time.perf_counter_ns()
        server.stop()
        stopped = time.perf_counter_ns() - t0
    return {
        "start_ms": started / 1e6,
        "stop_ms": stopped / 1e6,
        "start_stop_ms": (started + stopped) / 1e6,
        "first_request_ms": first / 1e6,
        "keepalive_ms": summary(again)["median"] / 1e6,
    }


def _load(
    start: Callable[[], Running], clients: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    server = start()
    try:
        args = [server.url, "--clients", str(clients), "--seconds", str(seconds)]
        args += ["--max-requests", str(max_requests)]
        if server.ca_pem:
            args += ["--ca", server.ca_pem]
        proc = subprocess.run(
            python_module("benchmarks._loadgen", *args),
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=120,
        )
    finally:
        server.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run(quick: bool) -> Result:
    from pytest_httptrace._certs import new_ca

    rounds, load_rounds, seconds = (1, 1, 0.2) if quick else (10, 3, 2.0)
    clients, max_requests = 50, 100_000
    keepalive = 3 if quick else KEEPALIVE
    ca = new_ca()
    with tempfile.TemporaryDirectory(prefix="httptrace-bench-") as tmp:
        ca_pem = str(Path(tmp) / "ca.pem")
        ca.cert_pem.write_to_path(ca_pem)
        starters = {kind: _starter(kind, ca, ca_pem) for kind in KINDS}
        for start in starters.values() if not quick else ():
            _lifecycle(start, 1)  # untimed: imports, first-use caches
        life: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
        for r in range(rounds):
            for kind in rotated(KINDS, r):
                life[kind].append(_lifecycle(starters[kind], keepalive))
        loads: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        for r in range(load_rounds):
            for kind in rotated(KINDS, r):
                loads[kind].append(
                    _load(starters[kind], clients, seconds, max_requests)
                )
    rows = []
    for kind in KINDS:
        row: dict[str, Any] = {"server": kind}
        for key in life[kind][0]:
            row[key] = summary([sample[key] for sample in life[kind]])
        row["requests_per_s"] = summary([x["requests_per_s"] for x in loads[kind]])
        row["load_errors"] = sum(x["errors"] for x in loads[kind])
        row["load_reconnects"] = sum(x["reconnects"] for x in loads[kind])
        row["load_requests"] = sum(x["requests"] for x in loads[kind])
        rows.append(row)
    return {
        "rounds": rounds,
        "load_rounds": load_rounds,
        "load": {"clients": clients, "seconds": seconds, "max_requests": max_requests},
        "targets": {
            "start_stop_ms": 20.0,
            "first_request_ms": 10.0,
            "keepalive_ms": 2.0,
        },
        "rows": rows,
    }


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    bench_main("servers", run)
