"""Render an httptrace HTML report in headless Chromium and save a screenshot.

    python scripts/screenshot_report.py [REPORT.html] [--out docs/img/report.png]

Without a report, it records a small scenario against the local test server (two
HTTP/1.1 connections, two HTTP/2 streams on one connection, early hints; a failed test
with a refused dial and a response never closed), writes the report to a temporary
directory and screenshots that: the picture in docs/reports.md.
Needs Debian's ``chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx

from pytest_httptrace import Recorder
from pytest_httptrace.report import write_report
from pytest_httptrace.server import start_server
from pytest_httptrace.waterfall import request_data


def scenario(directory: Path) -> Path:
    """Record the scenario and write its report; return the HTML file."""
    tests: list[tuple[str, Any]] = []
    with start_server() as server:
        with Recorder.start() as recorder, server.client() as client:
            client.get("/")
            client.get("/close")  # the server closes the connection...
            client.get("/")  # ...so this request dials a second one
        tests.append(("tests/test_api.py::test_reconnects_after_close", recorder))

        async def streams() -> None:
            await anyio.sleep(0)  # anyio's backend import (~20 ms) before, not during
            async with server.async_client(http2=True) as client:
                await client.get("/")
                await asyncio.gather(
                    client.get("/delay/0.02"), client.get("/early-hints")
                )

        with Recorder.start() as recorder:
            asyncio.run(streams())
        tests.append(("tests/test_api.py::test_http2_streams", recorder))

        with Recorder.start() as recorder, server.client() as client:
            with contextlib.suppress(httpx.ConnectError):
                client.get(f"https://127.0.0.1:{_closed_port()}/")  # refused
            leaked = client.send(client.build_request("GET", "/stream/3"), stream=True)
            client.get("/")  # the leaked response holds connection 1: a new one
            # As the report of a test that leaked sees it: before the close.
            snapshot = [request_data(r) for r in recorder.all_requests]
            leaked.close()
        tests.append(("tests/test_api.py::test_leaky_download", snapshot))
    outcomes = ["passed", "passed", "failed"]
    _, html_path = write_report(
        directory / "run",
        [
            (name, rec if isinstance(rec, list) else rec.all_requests, outcome)
            for (name, rec), outcome in zip(tests, outcomes, strict=True)
        ],
    )
    return html_path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def screenshot(html: Path, out: Path, *, width: int = 1200, height: int = 850) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={out.resolve()}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "report", nargs="?", type=Path, help="an httptrace .html report"
    )
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        html = args.report or scenario(Path(tmp))
        screenshot(html, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
