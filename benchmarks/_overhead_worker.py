"""A client process of the overhead benchmark: one variant, four warm httpx clients.

``python -m benchmarks._overhead_worker VARIANT BASE_URL CA_PEM [WARMUP]`` (WARMUP:
untimed GETs on each new client, 30 by default) reads JSON commands,
one per line, on standard input and answers each with one JSON line:

- ``{"cmd": "run", "config": "sync-h1", "n": 100, "warm": 5}``: ``warm`` untimed GETs
  of ``/``, then ``n`` GETs on the warm client of that config (``sync-h1``,
  ``sync-h2``, ``async-h1``, ``async-h2``), each timed alone; answers ``{"ns": [...],
  "cpu_ns": C, "events": E, "requests": R}`` (the process's CPU time for the ``n``
  GETs; what the recorder saw, for the recording variant).
- ``{"cmd": "quit"}``: closes the clients; answers what was imported and installed.

Variants (what differs is only the plugin):

- ``none``, ``none_b``: pytest imported, pytest_httptrace never imported (``none_b`` is
  a second process of the same kind: an A/A control, the noise floor of the setup);
- ``httpcore_noop`` (anchor, the floor): pytest_httptrace never imported; every GET
  carries httpcore's own ``trace`` extension with a no-op callback
  (``extensions={"trace": noop}``; an ``async def`` no-op on the async clients);
- ``otel`` (anchor, what users pick today): pytest_httptrace never imported;
  OpenTelemetry's httpx instrumentation (``HTTPXClientInstrumentor``, for httpx2
  ``HTTPX2ClientInstrumentor``) with the SDK's ``TracerProvider`` and
  ``SimpleSpanProcessor(InMemorySpanExporter())``, the exporter cleared after every
  batch. If the installed instrumentation cannot trace the library (no httpx2
  instrumentor before 0.65b0, or a first GET made no span), the process answers
  ``{"ready": "otel", "not_applicable": REASON}`` and measures nothing;
- ``imported``: the plugin imported (``pytest_httptrace.plugin``), never used;
- ``idle``: the plugin imported and a recorder started and stopped once before
  measuring (a previous test recorded): httpx as shipped, no trace in effect;
- ``installed``: a trace in effect in *another* context, so the instrumentation is
  installed, but these requests carry no trace (the patched paths' cheap exit);
- ``one``: a trace with one hook set (``ClientTrace(got_conn=lambda info: None)``)
  in effect in the requests' own context (`with_client_trace`, entered once at the
  start): the instrumentation's work for a request when one hook is set;
- ``recording``: `Recorder.start` around every batch: every hook recording.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import json
import os
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest  # noqa: F401  - every variant runs where pytest is loaded

if TYPE_CHECKING:
    import httpx
else:
    # The client library measured: httpx (default) or httpx2 (BENCH_LIB=httpx2).
    httpx = importlib.import_module(os.environ.get("BENCH_LIB", "httpx"))

VARIANTS = (
    "none",
    "none_b",
    "imported",
    "idle",
    "installed",
    "one",
    "recording",
    "httpcore_noop",
    "otel",
)
#: Variants that never import the plugin.
NO_PLUGIN_IMPORT = ("none", "none_b", "httpcore_noop", "otel")
CONFIGS = ("sync-h1", "sync-h2", "async-h1", "async-h2")
WARMUP = 30


def _noop(event_name: str, info: dict[str, Any]) -> None:
    """httpcore's ``trace`` extension callback, doing nothing (sync clients)."""


async def _anoop(event_name: str, info: dict[str, Any]) -> None:
    """The same for async clients (httpcore awaits it)."""


def _context(ca: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    return context


class Worker:
    def __init__(
        self, variant: str, base_url: str, ca: str, warmup: int = WARMUP
    ) -> None:
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; one of {VARIANTS}")
        self.variant = variant
        self.warmup = warmup
        self.base_url = base_url
        self.ca = ca
        self.loop = asyncio.new_event_loop()
        self.sync: dict[str, httpx.Client] = {}
        self.aio: dict[str, httpx.AsyncClient] = {}
        self._other_context: Any = None
        self._plugin: Any = None
        self._attach: Any = None
        self.exporter: Any = None
        self.instrumentor: Any = None
        #: Why this variant cannot be measured with this library (otel on httpx2).
        self.not_applicable: str | None = None
        if variant not in NO_PLUGIN_IMPORT:
            import pytest_httptrace
            import pytest_httptrace.plugin

            self._plugin = pytest_httptrace
        if variant == "installed":
            # Enter a trace in a copied context: installed process-wide, not here.
            self._other_context = contextvars.copy_context()
            attach = pytest_httptrace.with_client_trace(pytest_httptrace.ClientTrace())
            self._attach = attach
            self._other_context.run(attach.__enter__)
        elif variant == "one":
            # One hook set, in effect here (and in the tasks the loop creates, which
            # copy this context).
            self._attach = pytest_httptrace.with_client_trace(
                pytest_httptrace.ClientTrace(got_conn=lambda info: None)
            )
            self._attach.__enter__()
        elif variant == "otel":
            self._instrument_otel()

    def _instrument_otel(self) -> None:
        from opentelemetry.instrumentation import httpx as otel_httpx
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        # httpx2 has its own instrumentor (opentelemetry-instrumentation-httpx 0.65b0).
        name = (
            "HTTPX2ClientInstrumentor"
            if httpx.__name__ == "httpx2"
            else "HTTPXClientInstrumentor"
        )
        instrumentor_class = getattr(otel_httpx, name, None)
        if instrumentor_class is None:
            self.not_applicable = (
                f"this opentelemetry-instrumentation-httpx has no {name} "
                f"(no {httpx.__name__} support before 0.65b0)"
            )
            return
        provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = instrumentor_class()
        self.instrumentor.instrument(tracer_provider=provider)
        # Does it see this library's requests?
        with httpx.Client(
            base_url=self.base_url, verify=_context(self.ca), trust_env=False
        ) as client:
            client.get("/").raise_for_status()
        if not self.exporter.get_finished_spans():
            self.not_applicable = (
                f"OpenTelemetry's {name} made no span for a {httpx.__name__} request"
            )
        self.exporter.clear()

    # -- clients

    def _client(
        self, config: str
    ) -> tuple[httpx.Client | None, httpx.AsyncClient | None]:
        http2 = config.endswith("h2")
        if config.startswith("sync"):
            client = self.sync.get(config)
            if client is None:
                client = httpx.Client(
                    base_url=self.base_url,
                    verify=_context(self.ca),
                    http2=http2,
                    trust_env=False,
                )
                self.sync[config] = client
                self._warm(config, client, None)
            return client, None
        aclient = self.aio.get(config)
        if aclient is None:
            aclient = httpx.AsyncClient(
                base_url=self.base_url,
                verify=_context(self.ca),
                http2=http2,
                trust_env=False,
            )
            self.aio[config] = aclient
            self._warm(config, None, aclient)
        return None, aclient

    def _warm(
        self,
        config: str,
        client: httpx.Client | None,
        aclient: httpx.AsyncClient | None,
    ) -> None:
        recorder = None
        if self.variant == "idle":
            # A recorder ran before (installed, then removed the instrumentation).
            recorder = self._plugin.Recorder.start()
        try:
            self._batch(config, client, aclient, self.warmup)
        finally:
            if recorder is not None:
                recorder.stop()
                assert recorder.events, "the idle variant's warm-up recorded nothing"

    # -- measuring

    def _batch(
        self,
        config: str,
        client: httpx.Client | None,
        aclient: httpx.AsyncClient | None,
        n: int,
    ) -> tuple[list[int], int]:
        """Time ``n`` GETs one by one (wall clock, ns), and the batch's CPU time."""
        http_version = "HTTP/2" if config.endswith("h2") else "HTTP/1.1"
        clock = time.perf_counter_ns
        times: list[int] = []
        cpu0 = time.thread_time_ns()
        if client is not None:
            get: Any = client.get
            if self.variant == "httpcore_noop":
                get = functools.partial(get, extensions={"trace": _noop})
            for _ in range(n):
                t0 = clock()
                response = get("/")
                times.append(clock() - t0)
                if response.status_code != 200 or response.http_version != http_version:
                    raise RuntimeError(f"unexpected response {response!r}")
            return times, time.thread_time_ns() - cpu0
        assert aclient is not None
        aget: Any = aclient.get
        if self.variant == "httpcore_noop":
            aget = functools.partial(aget, extensions={"trace": _anoop})

        async def batch() -> None:
            for _ in range(n):
                t0 = clock()
                response = await aget("/")
                times.append(clock() - t0)
                if response.status_code != 200 or response.http_version != http_version:
                    raise RuntimeError(f"unexpected response {response!r}")

        self.loop.run_until_complete(batch())
        return times, time.thread_time_ns() - cpu0

    def run(self, config: str, n: int, warm: int) -> dict[str, Any]:
        client, aclient = self._client(config)
        recorder = None
        if self.variant == "recording":
            recorder = self._plugin.Recorder.start()
        try:
            if warm:
                # The process slept while the others ran: wake it up, untimed.
                self._batch(config, client, aclient, warm)
                if recorder is not None:
                    recorder.clear()
            if self.exporter is not None:
                self.exporter.clear()
            times, cpu = self._batch(config, client, aclient, n)
        finally:
            if recorder is not None:
                recorder.stop()
        answer: dict[str, Any] = {"ns": times, "cpu_ns": cpu}
        if recorder is not None:
            answer["events"] = len(recorder.events)
            answer["requests"] = len(recorder.requests)
        if self.exporter is not None:
            answer["spans"] = len(self.exporter.get_finished_spans())
            self.exporter.clear()
        return answer

    def quit(self) -> dict[str, Any]:
        for client in self.sync.values():
            client.close()
        for aclient in self.aio.values():
            self.loop.run_until_complete(aclient.aclose())
        self.loop.close()
        installed = False
        if "pytest_httptrace.trace" in sys.modules:
            installed = sys.modules["pytest_httptrace.trace"].instrumentation_active()
        if self._other_context is not None:
            self._other_context.run(self._attach.__exit__, None, None, None)
        elif self._attach is not None:
            self._attach.__exit__(None, None, None)
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        return {
            "plugin_imported": "pytest_httptrace" in sys.modules,
            "instrumentation_installed": installed,
            "otel_imported": "opentelemetry" in sys.modules,
        }


def main() -> None:
    variant, base_url, ca = sys.argv[1:4]
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else WARMUP
    worker = Worker(variant, base_url, ca, warmup)
    ready: dict[str, Any] = {"ready": variant}
    if worker.not_applicable is not None:
        ready["not_applicable"] = worker.not_applicable
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "run":
            answer = worker.run(
                command["config"], int(command["n"]), int(command.get("warm", 0))
            )
        elif command["cmd"] == "quit":
            print(json.dumps(worker.quit()), flush=True)
            return
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
