"""Tracing overhead of this checkout against an earlier commit, in one run.

``python -m benchmarks.compare REV [--quick] [--out FILE]``

``pytest_httptrace`` of commit REV is extracted (``git archive``) to a temporary
directory; client processes record every hook with REV's package or with this
checkout's, next to two processes without the plugin, exactly as in `overhead`
(server in another process, new processes every round, variants interleaved in
rotated order, 1000 timed keep-alive TLS GETs per variant and config). Reported: the
median per-request time and client CPU time of each, as ratios to the no-plugin
baseline, and this checkout's recording against REV's.

Not part of ``python -m benchmarks``: run it when a change claims to make tracing
cheaper.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import (
    ROOT,
    Result,
    WorkerProcess,
    meta,
    ratio_summary,
    rotated,
    summary,
    write_json,
)
from ._overhead_worker import CONFIGS
from ._serve import ServerProcess
from .overhead import WORKER, _check_state

#: label -> (worker variant, whether it imports REV's package)
VARIANTS = {
    "none": ("none", False),
    "none_b": ("none_b", False),
    "recording@REV": ("recording", True),
    "recording@HEAD": ("recording", False),
}


def extract(rev: str, into: Path) -> str:
    """``pytest_httptrace`` of ``rev`` under ``into``; its full commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "pytest_httptrace"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def run(rev: str, quick: bool) -> Result:
    rounds, subrounds, batch, warm, warmup = (
        (1, 1, 5, 1, 3) if quick else (10, 5, 20, 4, 30)
    )
    names = list(VARIANTS)
    times: dict[str, dict[str, list[int]]] = {
        c: {v: [] for v in names} for c in CONFIGS
    }
    cpu: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in names} for c in CONFIGS
    }
    per_round: dict[str, dict[str, list[float]]] = {
        c: {v: [] for v in names} for c in CONFIGS
    }
    with tempfile.TemporaryDirectory(prefix="httptrace-bench-rev-") as tmp:
        commit = extract(rev, Path(tmp))
        with ServerProcess.start() as server:
            for r in range(rounds):
                clients = {
                    name: WorkerProcess(
                        WORKER,
                        variant,
                        server.url,
                        server.ca,
                        warmup,
                        tree=tmp if old else None,
                    )
                    for name, (variant, old) in VARIANTS.items()
                }
                this: dict[str, dict[str, list[int]]] = {
                    c: {v: [] for v in names} for c in CONFIGS
                }
                states: dict[str, Any] = {}
                try:
                    for client in clients.values():
                        client.wait_ready()
                    for sub in range(subrounds):
                        for config in CONFIGS:
                            for name in rotated(names, r * subrounds + sub):
                                answer = clients[name].ask(
                                    {
                                        "cmd": "run",
                                        "config": config,
                                        "n": batch,
                                        "warm": warm,
                                    }
                                )
                                times[config][name].extend(answer["ns"])
                                this[config][name].extend(answer["ns"])
                                cpu[config][name].append(answer["cpu_ns"] / batch)
                finally:
                    for name, client in clients.items():
                        states[name] = client.close()
                for name, state in states.items():
                    _check_state(VARIANTS[name][0], state)
                for config in CONFIGS:
                    for name in names:
                        per_round[config][name].append(
                            summary(this[config][name])["median"]
                        )
    rows = []
    for config in CONFIGS:
        base = summary(times[config]["none"] + times[config]["none_b"])["median"]
        base_cpu = summary(cpu[config]["none"] + cpu[config]["none_b"])["median"]
        for name in names:
            rows.append(
                {
                    "config": config,
                    "variant": name,
                    "median_us": summary(times[config][name])["median"] / 1e3,
                    "ratio": summary(times[config][name])["median"] / base,
                    "cpu_us": summary(cpu[config][name])["median"] / 1e3,
                    "cpu_ratio": summary(cpu[config][name])["median"] / base_cpu,
                }
            )
        head, old = (
            per_round[config]["recording@HEAD"],
            per_round[config]["recording@REV"],
        )
        rows.append(
            {
                "config": config,
                "variant": "HEAD / REV, recording",
                "round_ratio": ratio_summary(
                    [a / b for a, b in zip(head, old, strict=True)]
                ),
                "cpu_ratio": summary(cpu[config]["recording@HEAD"])["median"]
                / summary(cpu[config]["recording@REV"])["median"],
            }
        )
    return {"rev": rev, "rev_commit": commit, "rounds": rounds, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("rev", help="the commit to compare this checkout with")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    result: Result = {"benchmark": "compare", "quick": args.quick, "meta": meta()}
    result.update(run(args.rev, args.quick))
    result["seconds"] = round(time.perf_counter() - started, 2)
    if args.out is not None:
        write_json(args.out, result)
    for row in result["rows"]:
        print(row)


if __name__ == "__main__":
    main()
