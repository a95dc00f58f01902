"""A client process of the requests benchmark: one variant, one warm
``requests.Session`` (keep-alive TLS, HTTP/1.1).

``python -m benchmarks._requests_worker VARIANT BASE_URL CA_PEM [WARMUP]`` reads JSON
commands on standard input, one per line, and answers each with one JSON line:

- ``{"cmd": "run", "n": 100, "warm": 5}``: ``warm`` untimed GETs of ``/``, then ``n``
  GETs, each timed alone; answers ``{"ns": [...], "cpu_ns": C, "events": E,
  "requests": R, "spans": S}``.
- ``{"cmd": "quit"}``: closes the session; answers what was imported.

Variants (what differs is only the instrumentation):

- ``none``, ``none_b``: requests as shipped (``none_b``: a second process of the same
  kind, the A/A control);
- ``recording``: `Recorder.start` around every batch, every hook recording;
- ``otel``: OpenTelemetry's requests and urllib3 instrumentations with the SDK's
  ``TracerProvider`` and an in-memory exporter (``SimpleSpanProcessor``): what users
  pick today to observe requests, at its cheapest export.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest  # noqa: F401  - every variant runs where pytest is loaded
import requests

VARIANTS = ("none", "none_b", "recording", "otel")
WARMUP = 30


class Worker:
    def __init__(
        self, variant: str, base_url: str, ca: str, warmup: int = WARMUP
    ) -> None:
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; one of {VARIANTS}")
        self.variant = variant
        self.url = base_url + "/"
        self.exporter: Any = None
        self.recorder_class: Any = None
        self.instrumentors: list[Any] = []
        if variant == "recording":
            from pytest_httptrace import Recorder

            self.recorder_class = Recorder
        elif variant == "otel":
            from opentelemetry.instrumentation.requests import RequestsInstrumentor
            from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            provider = TracerProvider()
            self.exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            for instrumentor in (RequestsInstrumentor(), URLLib3Instrumentor()):
                instrumentor.instrument(tracer_provider=provider)
                self.instrumentors.append(instrumentor)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca
        self._batch(warmup)

    def _batch(self, n: int) -> tuple[list[int], int]:
        """Time ``n`` GETs one by one (wall clock, ns), and the batch's CPU time."""
        clock = time.perf_counter_ns
        get, url = self.session.get, self.url
        times: list[int] = []
        cpu0 = time.thread_time_ns()
        for _ in range(n):
            t0 = clock()
            response = get(url)
            times.append(clock() - t0)
            if response.status_code != 200 or response.content != b"hello":
                raise RuntimeError(f"unexpected response {response!r}")
        return times, time.thread_time_ns() - cpu0

    def run(self, n: int, warm: int) -> dict[str, Any]:
        recorder = None
        if self.recorder_class is not None:
            recorder = self.recorder_class.start()
        try:
            if warm:
                self._batch(warm)  # the process slept while the others ran
                if recorder is not None:
                    recorder.clear()
                if self.exporter is not None:
                    self.exporter.clear()
            times, cpu = self._batch(n)
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
        self.session.close()
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        return {
            "plugin_imported": "pytest_httptrace" in sys.modules,
            "otel_imported": "opentelemetry" in sys.modules,
        }


def main() -> None:
    variant, base_url, ca = sys.argv[1:4]
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else WARMUP
    worker = Worker(variant, base_url, ca, warmup)
    print(json.dumps({"ready": variant}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "run":
            answer = worker.run(int(command["n"]), int(command.get("warm", 0)))
        elif command["cmd"] == "quit":
            print(json.dumps(worker.quit()), flush=True)
            return
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
