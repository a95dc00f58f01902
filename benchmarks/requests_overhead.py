"""Benchmark: recording overhead for requests (urllib3) on keep-alive TLS GETs, with
OpenTelemetry's requests/urllib3 instrumentation measured beside it.

``python -m benchmarks.requests_overhead [--quick] [--out FILE]``

Our test server runs in its own process (`benchmarks._serve`); one client process per
variant (`benchmarks._requests_worker`: requests as shipped, an A/A copy of it, every
hook recording, OpenTelemetry) keeps one warm ``requests.Session`` (HTTP/1.1 over
TLS, one keep-alive connection). As in the httpx overhead benchmark: new client
processes every round; in each sub-round every variant runs a batch, variants taking
turns in rotated order; each batch starts with a few untimed GETs, then each GET is
timed alone. Full run: 10 rounds x 5 sub-rounds x 20 = 1000 timed GETs per variant.

Reported per variant: the median per-request time with its quartiles, its ratio to
the baseline (both processes without instrumentation pooled; their ratio to each
other is the A/A control), the per-round ratios (median, min, max, confidence
interval), and the client process's CPU time per request with its ratio.
"""

from __future__ import annotations

from typing import Any

from ._common import (
    Result,
    WorkerProcess,
    bench_main,
    dist_versions,
    ratio_summary,
    rotated,
    summary,
)
from ._requests_worker import VARIANTS
from ._serve import ServerProcess

BASELINE = "baseline"
NO_PLUGIN = ("none", "none_b")
TARGETS = {"recording": 1.05}
DISTS = (
    "requests",
    "urllib3",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-requests",
    "opentelemetry-instrumentation-urllib3",
)


#: The client process of this benchmark (see `WorkerProcess`).
WORKER = "benchmarks._requests_worker"


def _check_state(variant: str, state: dict[str, Any]) -> None:
    if "exited" in state:
        raise RuntimeError(f"client process {variant} died: {state}")
    expected = (variant == "recording", variant == "otel")
    if (state["plugin_imported"], state["otel_imported"]) != expected:
        raise RuntimeError(f"variant {variant} ran in the wrong state: {state}")


DECOMPOSE = ("shipped", "installed", "empty trace", "recorder")


def decompose(url: str, ca: str, rounds: int, batch: int, warmup: int) -> list[Any]:
    """Client CPU per request (µs) of each layer, in this process, alternating:
    requests as shipped, the patches installed but this request untraced, an empty
    ``ClientTrace()`` (the source's own work: request state, no hook set), a
    recorder."""
    import contextvars

    from pytest_httptrace import ClientTrace, Recorder, with_client_trace

    from ._requests_worker import Worker

    worker = Worker("none", url, ca, warmup)
    cpu: dict[str, list[float]] = {v: [] for v in DECOMPOSE}
    events: list[float] = []
    warm = 3
    try:
        for r in range(rounds):
            for variant in rotated(DECOMPOSE, r):
                recorder = None
                other = contextvars.copy_context()
                attach = with_client_trace(ClientTrace())
                if variant == "installed":
                    other.run(attach.__enter__)
                elif variant == "empty trace":
                    attach.__enter__()
                elif variant == "recorder":
                    recorder = Recorder.start()
                try:
                    worker._batch(warm)
                    _, ns = worker._batch(batch)
                finally:
                    if variant == "installed":
                        other.run(attach.__exit__, None, None, None)
                    elif variant == "empty trace":
                        attach.__exit__(None, None, None)
                    elif recorder is not None:
                        recorder.stop()
                        events.append(len(recorder.events) / (batch + warm))
                cpu[variant].append(ns / batch / 1e3)
    finally:
        worker.quit()
    rows = []
    base = previous = summary(cpu["shipped"])["median"]
    for variant in DECOMPOSE:
        us = summary(cpu[variant])["median"]
        row: dict[str, Any] = {
            "variant": variant,
            "cpu_us": us,
            "added_us": us - base,
            "step_us": us - previous,
        }
        if variant == "recorder":
            per_request = summary(events)["median"]
            row["events_per_request"] = per_request
            row["step_us_per_event"] = (us - previous) / per_request
        rows.append(row)
        previous = us
    return rows


def run(quick: bool) -> Result:
    if quick:
        rounds, subrounds, batch, warm, warmup = 1, 1, 5, 1, 3
    else:
        rounds, subrounds, batch, warm, warmup = 10, 5, 20, 4, 30
    pooled = (*VARIANTS, BASELINE)
    times: dict[str, list[int]] = {v: [] for v in pooled}
    cpu: dict[str, list[float]] = {v: [] for v in pooled}
    round_medians: dict[str, list[float]] = {v: [] for v in pooled}
    round_cpu: dict[str, list[float]] = {v: [] for v in pooled}
    events: list[float] = []
    spans: list[float] = []
    checks: dict[str, Any] = {}
    with ServerProcess.start() as server:
        for r in range(rounds):
            clients = {
                v: WorkerProcess(WORKER, v, server.url, server.ca, warmup)
                for v in VARIANTS
            }
            this_round: dict[str, list[int]] = {v: [] for v in pooled}
            this_cpu: dict[str, list[float]] = {v: [] for v in pooled}
            try:
                for client in clients.values():  # they start in parallel
                    client.wait_ready()
                for sub in range(subrounds):
                    for variant in rotated(VARIANTS, r * subrounds + sub):
                        answer = clients[variant].ask(
                            {"cmd": "run", "n": batch, "warm": warm}
                        )
                        times[variant].extend(answer["ns"])
                        this_round[variant].extend(answer["ns"])
                        cpu[variant].append(answer["cpu_ns"] / batch)
                        this_cpu[variant].append(answer["cpu_ns"] / batch)
                        if variant == "recording":
                            if answer["requests"] != batch:
                                raise RuntimeError(
                                    f"the recorder saw {answer['requests']} requests "
                                    f"of {batch}"
                                )
                            events.append(answer["events"] / batch)
                        if variant == "otel":
                            spans.append(answer["spans"] / batch)
            finally:
                for variant, client in clients.items():
                    checks[variant] = client.close()
            for variant, state in checks.items():
                _check_state(variant, state)
            for name in NO_PLUGIN:
                times[BASELINE].extend(this_round[name])
                cpu[BASELINE].extend(this_cpu[name])
                this_round[BASELINE] += this_round[name]
                this_cpu[BASELINE] += this_cpu[name]
            for variant in pooled:
                round_medians[variant].append(summary(this_round[variant])["median"])
                round_cpu[variant].append(summary(this_cpu[variant])["median"])
        layers = decompose(
            server.url, server.ca, *((1, 5) if quick else (15, 20)), warmup
        )

    base = summary(times[BASELINE])
    base_cpu = summary(cpu[BASELINE])
    rows = []
    for variant in VARIANTS:
        s, c = summary(times[variant]), summary(cpu[variant])
        row: dict[str, Any] = {
            "variant": variant,
            "requests": s["n"],
            "median_us": s["median"] / 1e3,
            "p25_us": s["p25"] / 1e3,
            "p75_us": s["p75"] / 1e3,
            "ratio": s["median"] / base["median"],
            "round_ratio": ratio_summary(
                [
                    m / b
                    for m, b in zip(
                        round_medians[variant], round_medians[BASELINE], strict=True
                    )
                ]
            ),
            "cpu_us": c["median"] / 1e3,
            "cpu_ratio": c["median"] / base_cpu["median"],
            "round_cpu_ratio": ratio_summary(
                [
                    m / b
                    for m, b in zip(
                        round_cpu[variant], round_cpu[BASELINE], strict=True
                    )
                ]
            ),
            "target": TARGETS.get(variant),
        }
        if variant == "recording":
            row["events_per_request"] = summary(events)["median"]
        if variant == "otel":
            row["spans_per_request"] = summary(spans)["median"]
        if variant == "none_b":
            a = summary(times["none"])["median"]
            row["aa_ratio"] = s["median"] / a
        rows.append(row)
    return {
        "rounds": rounds,
        "subrounds": subrounds,
        "batch": batch,
        "warm": warm,
        "variants": list(VARIANTS),
        "versions": dist_versions(DISTS),
        "rows": rows,
        "process_checks": checks,
        "decompose": layers,
    }


if __name__ == "__main__":
    bench_main("requests_overhead", run)
