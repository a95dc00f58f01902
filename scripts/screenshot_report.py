"""Render an httptrace HTML report in headless Chromium and save a screenshot.

    python scripts/screenshot_report.py [REPORT.html] [--out docs/img/report.png]

Without a report, it records a small scenario against the local test server (two
HTTP/1.1 connections, two HTTP/2 streams on one connection, early hints), writes the
report to a temporary directory and screenshots that: the picture in docs/reports.md.
Needs Debian's ``chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio

from pytest_httptrace import Recorder
from pytest_httptrace.report import write_report
from pytest_httptrace.server import start_server


def scenario(directory: Path) -> Path:
    """Record the scenario and write its report; return the HTML file."""
    tests = []
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
    _, html_path = write_report(
        directory / "run", [(name, rec.all_requests) for name, rec in tests]
    )
    return html_path


def screenshot(html: Path, out: Path, *, width: int = 1200, height: int = 640) -> None:
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
