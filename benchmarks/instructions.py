"""Benchmark: instructions per request, counted by valgrind (deterministic).

``python -m benchmarks.instructions [--quick] [--out FILE]`` (``BENCH_LIB=httpx2``
for httpx2)

Wall and CPU times on a shared 2-CPU machine move by several percent between two
identical processes (the A/A control of `benchmarks.overhead`), which is as large as
the differences the overhead targets are about. Instruction counts barely move:
valgrind (``--tool=cachegrind --cache-sim=no``) counts every instruction the client
process executes, about the same for the same work whatever else the machine does
(within 0.1 % from run to run on sync clients; up to about 1 % on async HTTP/2,
where how many loop turns and reads a response takes depends on when its bytes
arrive).
So this benchmark says how much client work each layer of the plugin adds to a
request — what the timed benchmarks can only bound.

Our test server runs in its own process (not under valgrind). For every config
(sync/async client, HTTP/1.1 and HTTP/2) and layer (`benchmarks._instr_client.
LAYERS`), the client process runs twice under valgrind: with
`N_LOW` and with `N_HIGH` keep-alive GETs after the same warm-up; the difference of
the two totals over ``N_HIGH - N_LOW`` is the instructions of one request (start-up,
imports and warm-up cancel out). The ``cold`` configs do the same with new clients
(DNS + TCP + TLS + the request + closing the client, per client), and
``start_stop`` a recorder started and stopped (once per recording test). Runs go two
at a time (instruction counts do not depend on the load).

Reported: instructions per request per config and layer, the ratio to httpx as
shipped and what each layer adds. These are client-side instructions only, not
time: a request's time also has the server's share and waits, so a ratio here is
larger than the same cost seen in wall time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._common import (
    COLD_TARGET,
    OVERHEAD_TARGETS,
    Result,
    bench_main,
    child_env,
    python_module,
)
from ._instr_client import LAYERS
from ._serve import ServerProcess

CONFIGS = ("sync-h1", "sync-h2", "async-h1", "async-h2")
COLD_CONFIGS = ("cold-sync-h1", "cold-async-h1")
#: The layers measured on the first request of new clients.
COLD_LAYERS = ("shipped", "empty", "recording")
N_LOW, N_HIGH = 20, 60
COLD_LOW, COLD_HIGH = 4, 12
START_STOP_LOW, START_STOP_HIGH = 10, 30

_COUNTED = re.compile(r"I\s+refs:\s+([\d,]+)")


def _count(layer: str, config: str, n: int, url: str, ca: str) -> int:
    """Instructions of one client process (cachegrind's total, ``I refs``)."""
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",  # instructions only: twice as fast as callgrind
        "--cachegrind-out-file=/dev/null",
        *python_module("benchmarks._instr_client", layer, config, str(n), url, ca),
    ]
    # A fixed hash seed: string hashes decide dict and set layouts, and so how many
    # probes a lookup takes; a random seed per process moves the totals by 1 %.
    env = child_env(PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    found = _COUNTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(
            f"cachegrind run {layer} {config} {n} failed ({proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )
    return int(found[1].replace(",", ""))


def _per_request(
    pool: ThreadPoolExecutor, jobs: list[tuple[str, str, int, int]], url: str, ca: str
) -> dict[tuple[str, str], float]:
    """(layer, config) -> instructions per request, from runs with low and high n."""
    futures = {
        (layer, config, n): pool.submit(_count, layer, config, n, url, ca)
        for layer, config, low, high in jobs
        for n in (low, high)
    }
    return {
        (layer, config): (
            futures[(layer, config, high)].result()
            - futures[(layer, config, low)].result()
        )
        / (high - low)
        for layer, config, low, high in jobs
    }


def run(quick: bool) -> Result:
    lib = os.environ.get("BENCH_LIB", "httpx")
    if shutil.which("valgrind") is None:
        return {"lib": lib, "not_applicable": "valgrind is not installed", "rows": []}
    configs: tuple[str, ...]
    layers: tuple[str, ...]
    cold_configs: tuple[str, ...]
    if quick:
        configs, layers, cold_configs = ("sync-h1",), ("shipped", "recording"), ()
        n, cold_n, stop_n = (2, 4), (1, 2), (1, 2)
    else:
        configs, layers, cold_configs = CONFIGS, LAYERS[:-1], COLD_CONFIGS
        n, cold_n = (N_LOW, N_HIGH), (COLD_LOW, COLD_HIGH)
        stop_n = (START_STOP_LOW, START_STOP_HIGH)
    jobs = [(layer, config, *n) for config in configs for layer in layers]
    jobs += [(layer, c, *cold_n) for c in cold_configs for layer in COLD_LAYERS]
    jobs.append(("start_stop", "-", *stop_n))
    with ServerProcess.start() as server, ThreadPoolExecutor(2) as pool:
        counts = _per_request(pool, jobs, server.url + "/", server.ca)
    rows: list[dict[str, Any]] = []
    for config in (*configs, *cold_configs):
        measured = layers if config in configs else COLD_LAYERS
        base = counts[("shipped", config)]
        previous = base
        for layer in measured:
            value = counts[(layer, config)]
            row: dict[str, Any] = {
                "config": config,
                "layer": layer,
                "instructions": value,
                "ratio": value / base,
                "added": value - base,
                "step": value - previous,
            }
            if config in configs and layer in OVERHEAD_TARGETS:
                row["target"] = OVERHEAD_TARGETS[layer]
            elif layer == "recording":
                row["target"] = COLD_TARGET
            rows.append(row)
            if layer != "noop":  # an anchor beside the layers, not one of them
                previous = value
    rows.append(
        {
            "config": "-",
            "layer": "start_stop",
            "instructions": counts[("start_stop", "-")],
        }
    )
    return {
        "lib": lib,
        "configs": list(configs),
        "cold_configs": list(cold_configs),
        "layers": list(layers),
        "n": list(n),
        "rows": rows,
    }


if __name__ == "__main__":
    bench_main("instructions", run)
