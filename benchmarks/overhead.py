"""Benchmark 1: tracing overhead on keep-alive TLS requests.

``python -m benchmarks.overhead [--quick] [--out FILE]``; ``BENCH_LIB=httpx2`` measures
httpx2 instead of httpx, ``BENCH_CONFIGS=sync-h1,async-h2`` a subset of the configs.

Our test server runs in its own process (`benchmarks._serve`). One client process per
variant (`benchmarks._overhead_worker`: no plugin, an A/A copy of it, plugin imported,
plugin idle, instrumentation installed but this request untraced, one hook set, every
hook recording; and two anchors without the plugin: httpcore's own ``trace``
extension with a no-op callback, the floor of any tracing, and OpenTelemetry's httpx
instrumentation, what users pick today) keeps four
warm clients: sync and async, HTTP/1.1 and HTTP/2. Every round starts new client
processes (so that what differs between two processes of the same kind, such as memory
layout and hash seed, varies between rounds rather than biasing a variant), then in
each of its sub-rounds every variant runs a batch of GETs on each config, variants
taking turns in rotated order, one process at a time; each batch starts with a few
untimed GETs (the process slept while the others ran), then each request is timed
alone. Full run: 10 rounds x 5 sub-rounds x 20 = 1000 timed GETs per variant and
config; small batches spread the machine's drift evenly. A variant that cannot run
with the library measured (OpenTelemetry's, where the installed instrumentation has no
httpx2 instrumentor) says why at start-up and gets a row saying so
(``not_applicable``) instead of figures.

Reported per config and variant: the median per-request time with its quartiles, and
the ratio to the baseline, which pools the two processes without the plugin (``none``
and ``none_b``; their ratio to each other is the A/A control): of the medians over all
requests, and per round (the median of the 10 round ratios, with their min and max:
how much the ratio itself moves); and the
client process's CPU time per request (median over batches) with its ratio: the
client-side cost alone, without the server's time and the scheduler's noise.

Then, in this process, where the recording cost goes (`decompose`): client CPU time
per request with httpx as shipped, with the instrumentation installed but no trace
here, with an empty ``ClientTrace()`` in effect (the instrumentation's own work: it
builds the request's state and fires every hook, no hook set), with one hook set
(``got_conn``, a no-op), and with a recorder.
"""

from __future__ import annotations

import os
from typing import Any

from ._common import (
    OVERHEAD_TARGETS,
    Result,
    WorkerProcess,
    bench_main,
    dist_versions,
    ratio_summary,
    rotated,
    summary,
)
from ._overhead_worker import CONFIGS, NO_PLUGIN_IMPORT, VARIANTS, Worker
from ._serve import ServerProcess

#: The baseline pools the two processes without the plugin (each round's "none" and
#: "none_b"), so that one slow process does not move every ratio of its round.
BASELINE = "baseline"
NO_PLUGIN = ("none", "none_b")
TARGETS = OVERHEAD_TARGETS
#: Not ours: what the plugin's figures are shown beside (no target).
ANCHORS = ("httpcore_noop", "otel")


DISTS = (
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-httpx",
)


#: The client process of this benchmark (see `WorkerProcess`).
WORKER = "benchmarks._overhead_worker"


DECOMPOSE = ("shipped", "installed", "empty trace", "one hook", "recorder")


def decompose(
    url: str, ca: str, configs: tuple[str, ...], rounds: int, batch: int, warmup: int
) -> list[dict[str, Any]]:
    """Client CPU per request (µs) of each layer, in this process, alternating."""
    import contextvars

    from pytest_httptrace import ClientTrace, Recorder, with_client_trace

    worker = Worker("imported", url, ca, warmup)
    warm = 3
    cpu: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in DECOMPOSE} for c in configs
    }
    events: dict[str, list[float]] = {c: [] for c in configs}
    try:
        for r in range(rounds):
            for config in configs:
                client, aclient = worker._client(config)
                for variant in rotated(DECOMPOSE, r):
                    recorder = None
                    other = contextvars.copy_context()
                    attach = with_client_trace(
                        ClientTrace(got_conn=lambda info: None)
                        if variant == "one hook"
                        else ClientTrace()
                    )
                    if variant == "installed":
                        other.run(attach.__enter__)
                    elif variant in ("empty trace", "one hook"):
                        attach.__enter__()
                    elif variant == "recorder":
                        recorder = Recorder.start()
                    try:
                        worker._batch(config, client, aclient, warm)
                        _, ns = worker._batch(config, client, aclient, batch)
                    finally:
                        if variant == "installed":
                            other.run(attach.__exit__, None, None, None)
                        elif variant in ("empty trace", "one hook"):
                            attach.__exit__(None, None, None)
                        elif recorder is not None:
                            recorder.stop()
                            events[config].append(len(recorder.events) / (batch + warm))
                    cpu[config][variant].append(ns / batch / 1e3)
    finally:
        worker.quit()
    rows = []
    for config in configs:
        base = summary(cpu[config]["shipped"])["median"]
        empty = summary(cpu[config]["empty trace"])["median"]
        previous = base
        for variant in DECOMPOSE:
            us = summary(cpu[config][variant])["median"]
            row: dict[str, Any] = {
                "config": config,
                "variant": variant,
                "cpu_us": us,
                "added_us": us - base,
                "step_us": us - previous,
            }
            if variant == "recorder":
                per_request = summary(events[config])["median"]
                row["events_per_request"] = per_request
                row["step_us_per_event"] = (us - previous) / per_request
                # Every hook set, over no hook set: what a recorded event costs.
                row["us_per_event_over_empty"] = (us - empty) / per_request
            rows.append(row)
            previous = us
    return rows


def _check_state(variant: str, state: dict[str, Any]) -> None:
    if "exited" in state:
        raise RuntimeError(f"client process {variant} died: {state}")
    expected = (
        variant not in NO_PLUGIN_IMPORT,
        variant in ("installed", "one"),
        variant == "otel",
    )
    if (
        state["plugin_imported"],
        state["instrumentation_installed"],
        state["otel_imported"],
    ) != expected:
        raise RuntimeError(f"variant {variant} ran in the wrong state: {state}")


def run(quick: bool) -> Result:
    if quick:
        rounds, subrounds, batch, warm, warmup = 1, 1, 5, 1, 3
    else:
        rounds, subrounds, batch, warm, warmup = 10, 5, 20, 4, 30
    configs = tuple(os.environ.get("BENCH_CONFIGS", ",".join(CONFIGS)).split(","))
    lib = os.environ.get("BENCH_LIB", "httpx")
    variants = VARIANTS
    pooled = (*variants, BASELINE)
    times: dict[str, dict[str, list[int]]] = {
        c: {v: [] for v in pooled} for c in configs
    }
    round_medians: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in pooled} for c in configs
    }
    cpu: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in pooled} for c in configs
    }
    round_cpu: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in pooled} for c in configs
    }
    events: dict[str, list[float]] = {c: [] for c in configs}
    spans: dict[str, list[float]] = {c: [] for c in configs}
    checks: dict[str, Any] = {}
    #: Variants that cannot run with this library, and why (known after round 1).
    not_applicable: dict[str, str] = {}
    with ServerProcess.start() as server:
        for r in range(rounds):
            # New client processes every round: what differs between two processes
            # of the same kind (memory layout, hash seed) varies from round to round
            # instead of biasing one variant for the whole run.
            clients = {
                v: WorkerProcess(WORKER, v, server.url, server.ca, warmup)
                for v in variants
                if v not in not_applicable
            }
            this_round: dict[str, dict[str, list[int]]] = {
                c: {v: [] for v in pooled} for c in configs
            }
            this_cpu: dict[str, dict[str, list[float]]] = {
                c: {v: [] for v in pooled} for c in configs
            }
            try:
                for variant, client in clients.items():  # they start in parallel
                    reason = client.wait_ready()
                    if reason is not None:
                        not_applicable[variant] = reason
                measured = [v for v in variants if v not in not_applicable]
                for sub in range(subrounds):
                    for config in configs:
                        for variant in rotated(measured, r * subrounds + sub):
                            answer = clients[variant].ask(
                                {
                                    "cmd": "run",
                                    "config": config,
                                    "n": batch,
                                    "warm": warm,
                                }
                            )
                            ns: list[int] = answer["ns"]
                            times[config][variant].extend(ns)
                            this_round[config][variant].extend(ns)
                            cpu[config][variant].append(answer["cpu_ns"] / batch)
                            this_cpu[config][variant].append(answer["cpu_ns"] / batch)
                            if variant == "recording":
                                if answer["requests"] != batch:
                                    raise RuntimeError(
                                        f"the recorder saw {answer['requests']} "
                                        f"requests of {batch}"
                                    )
                                events[config].append(answer["events"] / batch)
                            if variant == "otel":
                                if answer["spans"] < batch:
                                    raise RuntimeError(
                                        f"OpenTelemetry exported {answer['spans']} "
                                        f"spans for {batch} requests"
                                    )
                                spans[config].append(answer["spans"] / batch)
            finally:
                for variant, client in clients.items():
                    checks[variant] = client.close()
            for variant, state in checks.items():
                _check_state(variant, state)
            for config in configs:
                for name in NO_PLUGIN:
                    times[config][BASELINE].extend(this_round[config][name])
                    cpu[config][BASELINE].extend(this_cpu[config][name])
                    this_round[config][BASELINE] += this_round[config][name]
                    this_cpu[config][BASELINE] += this_cpu[config][name]
                for variant in (*measured, BASELINE):
                    median = summary(this_round[config][variant])["median"]
                    round_medians[config][variant].append(median)
                    median = summary(this_cpu[config][variant])["median"]
                    round_cpu[config][variant].append(median)
        layers = decompose(
            server.url, server.ca, configs, *((1, 5) if quick else (15, 20)), warmup
        )

    rows = []
    for config in configs:
        base = summary(times[config][BASELINE])
        base_cpu = summary(cpu[config][BASELINE])
        for variant in variants:
            if variant in not_applicable:
                rows.append(
                    {
                        "config": config,
                        "variant": variant,
                        "not_applicable": not_applicable[variant],
                        "target": TARGETS.get(variant),
                    }
                )
                continue
            s = summary(times[config][variant])
            c = summary(cpu[config][variant])
            paired = [
                m / b
                for m, b in zip(
                    round_medians[config][variant],
                    round_medians[config][BASELINE],
                    strict=True,
                )
            ]
            paired_cpu = [
                m / b
                for m, b in zip(
                    round_cpu[config][variant], round_cpu[config][BASELINE], strict=True
                )
            ]
            row: dict[str, Any] = {
                "config": config,
                "variant": variant,
                "requests": s["n"],
                "median_us": s["median"] / 1e3,
                "p25_us": s["p25"] / 1e3,
                "p75_us": s["p75"] / 1e3,
                "ratio": s["median"] / base["median"],
                "round_ratio": ratio_summary(paired),
                "cpu_us": c["median"] / 1e3,
                "cpu_ratio": c["median"] / base_cpu["median"],
                "round_cpu_ratio": ratio_summary(paired_cpu),
                "target": TARGETS.get(variant),
            }
            if variant == "recording":
                row["events_per_request"] = summary(events[config])["median"]
            if variant == "otel":
                row["spans_per_request"] = summary(spans[config])["median"]
            if variant == "none_b":
                # The A/A control: one process without the plugin against the other.
                a = summary(times[config]["none"])["median"]
                row["aa_ratio"] = s["median"] / a
                row["aa_round_ratio"] = ratio_summary(
                    [
                        b / a
                        for b, a in zip(
                            round_medians[config]["none_b"],
                            round_medians[config]["none"],
                            strict=True,
                        )
                    ]
                )
            rows.append(row)
    return {
        "lib": lib,
        "rounds": rounds,
        "subrounds": subrounds,
        "batch": batch,
        "warm": warm,
        "variants": list(variants),
        "anchors": list(ANCHORS),
        "versions": dist_versions(DISTS),
        "not_applicable": not_applicable,
        "configs": list(configs),
        "rows": rows,
        "process_checks": checks,
        "decompose": layers,
    }


if __name__ == "__main__":
    bench_main("overhead", run)
