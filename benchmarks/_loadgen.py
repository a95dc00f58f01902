"""A small load generator: N concurrent keep-alive HTTP/1.1 clients on raw asyncio.

``python -m benchmarks._loadgen URL --clients 50 --seconds 2 --max-requests 100000
[--ca PEM]`` opens ``clients`` connections (TLS when the URL is https, trusting only
``--ca``), sends one untimed GET on each, then has every connection send GET after GET
(waiting for each response: no pipelining) until ``seconds`` pass or ``max_requests``
responses arrived in all. A server that closes the connection after a response
(HTTP/1.0, ``Connection: close``) gets a new connection, counted as a reconnect and
timed like the rest. Prints one JSON line: requests, seconds, requests_per_s,
reconnects, errors.

Raw streams rather than httpx so that the client is not the bottleneck: its cost per
request is a fraction of any server's here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import time
from urllib.parse import urlsplit

#: Seconds past the run's own length before it is given up on.
_GRACE = 30.0


class _Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.reconnects = 0
        self.errors = 0


async def _connect(
    host: str, port: int, context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        host, port, ssl=context, server_hostname=host if context else None
    )


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bool:
    """Send one GET and read its response; True if the connection stays open."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    if status != "200":
        raise RuntimeError(f"status {status}")
    length = None
    close = version == "HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value == "close" or (
                version == "HTTP/1.0" and value != "keep-alive"
            )
    if length is None:
        raise RuntimeError("response without Content-Length")
    await reader.readexactly(length)
    return not close


async def _client(
    host: str,
    port: int,
    request: bytes,
    context: ssl.SSLContext | None,
    stats: _Stats,
    ready: asyncio.Event,
    go: asyncio.Event,
    deadline: list[float],
    max_requests: int,
) -> None:
    reader, writer = await _connect(host, port, context)
    if not await _exchange(reader, writer, request):  # untimed warm-up
        writer.close()
        reader, writer = await _connect(host, port, context)
    ready.set()
    await go.wait()
    try:
        while time.perf_counter() < deadline[0] and stats.requests < max_requests:
            try:
                keep = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, RuntimeError):
                stats.errors += 1
                keep = False
            else:
                stats.requests += 1
            if not keep:
                writer.close()
                stats.reconnects += 1
                reader, writer = await _connect(host, port, context)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.TimeoutError):
            # A TLS close waits for the server's close_notify: not forever.
            await asyncio.wait_for(writer.wait_closed(), 5)


async def load(
    url: str, clients: int, seconds: float, max_requests: int, ca: str | None
) -> dict[str, float]:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    context = None
    if parts.scheme == "https":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            context.load_verify_locations(ca)
    path = parts.path or "/"
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode("latin-1")
    stats = _Stats()
    go = asyncio.Event()
    deadline = [0.0]
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(
            _client(host, port, request, context, stats, r, go, deadline, max_requests)
        )
        for r in readies
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    # One bound for the whole run (none per request: it would cost what is measured):
    # a connection the server never answers fails the run instead of hanging it.
    await asyncio.wait_for(asyncio.gather(*tasks), seconds + _GRACE)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": stats.requests,
        "seconds": elapsed,
        "requests_per_s": stats.requests / elapsed,
        "reconnects": stats.reconnects,
        "errors": stats.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--ca")
    args = parser.parse_args()
    result = asyncio.run(
        load(args.url, args.clients, args.seconds, args.max_requests, args.ca)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
