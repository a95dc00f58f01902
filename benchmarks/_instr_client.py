"""The client process `benchmarks.instructions` runs under valgrind.

``python -m benchmarks._instr_client LAYER CONFIG N URL CA`` sends N keep-alive GETs
(after a warm-up of `WARMUP`) with one client, or, for a ``cold-...`` CONFIG, makes N
new clients that send one GET each; LAYER says what is in effect (`LAYERS`). It
prints nothing: valgrind counts the instructions of the whole process, and two runs
with different N tell the instructions per request. ``BENCH_LIB=httpx2`` measures
httpx2. Like `benchmarks._overhead_worker`, it imports ``pytest_httptrace`` only for
the layers that use it.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import os
import ssl
import sys
from typing import Any

#: The layers, in the order they add work: httpx as shipped; httpcore's own trace
#: extension with a no-op callback (the floor of following httpcore's events); the
#: plugin's instrumentation installed for a trace in another context (this request
#: untraced); an empty ``ClientTrace()`` in effect (the instrumentation's own work);
#: one hook set (``got_conn``); a recorder recording every hook; and, on its own,
#: a recorder started and stopped (what each recording test pays once).
LAYERS = ("shipped", "noop", "installed", "empty", "one", "recording", "start_stop")
WARMUP = 20


def _attach(layer: str) -> None:
    if layer in ("shipped", "noop"):
        return  # the plugin is never imported
    from pytest_httptrace import ClientTrace, Recorder, with_client_trace

    if layer == "installed":
        other = contextvars.copy_context()
        other.run(with_client_trace(ClientTrace()).__enter__)
    elif layer == "empty":
        with_client_trace(ClientTrace()).__enter__()
    elif layer == "one":
        with_client_trace(ClientTrace(got_conn=lambda info: None)).__enter__()
    elif layer == "recording":
        Recorder.start()


def main() -> None:
    layer, config, n_text, url, ca = sys.argv[1:6]
    n = int(n_text)
    if layer == "start_stop":
        from pytest_httptrace import Recorder

        for _ in range(n):
            Recorder.start().stop()
        return
    httpx: Any = importlib.import_module(os.environ.get("BENCH_LIB", "httpx"))
    cold = config.startswith("cold-")
    config = config.removeprefix("cold-")
    http2 = config.endswith("h2")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    kwargs: dict[str, Any] = {
        "verify": context,
        "http2": http2,
        "http1": not http2,
        "trust_env": False,
    }
    _attach(layer)
    get: dict[str, Any] = {}
    if layer == "noop":
        if config.startswith("async"):

            async def noop(name: str, info: dict[str, Any]) -> None:
                pass

            get["extensions"] = {"trace": noop}
        else:
            get["extensions"] = {"trace": lambda name, info: None}
    if config.startswith("sync"):
        if cold:
            for _ in range(n):
                with httpx.Client(**kwargs) as client:
                    client.get(url, **get).raise_for_status()
            return
        with httpx.Client(**kwargs) as client:
            for _ in range(WARMUP + n):
                client.get(url, **get).raise_for_status()
        return

    async def run() -> None:
        if cold:
            for _ in range(n):
                async with httpx.AsyncClient(**kwargs) as client:
                    (await client.get(url, **get)).raise_for_status()
            return
        async with httpx.AsyncClient(**kwargs) as client:
            for _ in range(WARMUP + n):
                (await client.get(url, **get)).raise_for_status()

    asyncio.run(run())


if __name__ == "__main__":
    main()
