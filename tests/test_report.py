"""``--httptrace-report``: the Chrome trace JSON, the HTML page, and a real browser."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from pytest_httptrace.recorder import Recorder
from pytest_httptrace.report import (
    chrome_trace,
    html_report,
    report_paths,
    write_report,
)

pytest_plugins = ["pytester"]

SUITE = """
    import asyncio

    def test_reuse_then_close(httptrace_server):
        with httptrace_server.client() as client:
            client.get("/")
            client.get("/")
            client.get("/close")  # the server closes connection 1
            client.get("/")  # so this one dials connection 2

    def test_two_h2_streams(httptrace_server):
        async def main():
            async with httptrace_server.async_client(http2=True) as client:
                await client.get("/")
                await asyncio.gather(client.get("/delay/0.05"), client.get("/"))
        asyncio.run(main())

    def test_no_request():
        pass
"""

PHASE_NAMES = {"dns", "connect", "tls", "send", "wait", "transfer"}


def _processes(trace: dict[str, Any]) -> dict[str, int]:
    return {
        e["args"]["name"]: e["pid"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "process_name"
    }


def _thread_names(trace: dict[str, Any], pid: int) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == pid
    }


def _assert_properly_nested(trace: dict[str, Any]) -> None:
    """Trace viewers need the complete ("X") events of one track to nest."""
    tracks: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            assert e["dur"] >= 0, e
            tracks[(e["pid"], e["tid"])].append(
                (e["ts"], e["ts"] + e["dur"], e["name"])
            )
    for key, spans in tracks.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack: list[tuple[float, float, str]] = []
        for start, end, name in spans:
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack:
                parent = stack[-1]
                assert end <= parent[1] + 0.002, f"{key}: {name} overlaps {parent}"
            stack.append((start, end, name))


def _run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(SUITE)
    return pytester.runpytest("-p", "httptrace", "-W", "error", *args)


def test_report_json_has_one_track_per_connection(pytester: pytest.Pytester) -> None:
    result = _run_suite(pytester, "--httptrace-report=reports/nested/run.json")
    result.assert_outcomes(passed=3)
    json_path = pytester.path / "reports" / "nested" / "run.json"
    html_path = json_path.with_suffix(".html")
    result.stdout.fnmatch_lines(
        [f"httptrace report: {html_path} (open in a browser) and {json_path} *"]
    )
    trace = json.loads(json_path.read_text())
    assert trace["displayTimeUnit"] == "ms"
    processes = _processes(trace)
    reuse = "test_report_json_has_one_track_per_connection.py::test_reuse_then_close"
    streams = "test_report_json_has_one_track_per_connection.py::test_two_h2_streams"
    assert list(processes) == [reuse, streams]  # no process for test_no_request

    pid = processes[reuse]
    names = _thread_names(trace, pid)
    assert sorted(names) == [1, 2]
    assert names[1].startswith("connection #1 · HTTP/1.1 · 127.0.0.1:")
    assert names[2].startswith("connection #2 · HTTP/1.1 · ")
    mine = [e for e in trace["traceEvents"] if e["pid"] == pid and e["ph"] != "M"]
    requests = [e for e in mine if e["cat"] == "request"]
    assert [(e["tid"], e["name"]) for e in requests] == [
        (1, "GET / → 200"),
        (1, "GET / → 200"),
        (1, "GET /close → 200"),
        (2, "GET / → 200"),
    ]
    assert requests[1]["args"]["reused"] is True
    phases = {(e["tid"], e["name"]) for e in mine if e["cat"] == "phase"}
    assert {name for _, name in phases} == PHASE_NAMES
    assert (2, "tls") in phases  # connection 2 was dialed
    instants = [e for e in mine if e["ph"] == "i"]
    assert {e["name"] for e in instants} == {
        "get_conn",
        "got_conn",
        "wrote_header_field",
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "put_idle_conn",
    }
    got_conn = [e["args"] for e in instants if e["name"] == "got_conn"]
    assert [a["reused"] for a in got_conn] == [False, True, True, False]
    assert got_conn[0]["conn"] == "#1"
    tls = next(e for e in mine if e["cat"] == "phase" and e["name"] == "tls")
    assert tls["args"]["state"]["version"].startswith("TLS")

    # HTTP/2: one connection; the stream that overlapped another got its own track.
    names = _thread_names(trace, processes[streams])
    assert names[1].startswith("connection #1 · HTTP/2 · ")
    assert names[2] == "connection #1 (concurrent stream 2)"
    _assert_properly_nested(trace)

    page = html_path.read_text()
    assert reuse in page and streams in page
    assert page.count('<div class="track">') == 3  # 2 connections + 1 connection
    assert "1 test made no HTTP request" in page


def test_html_is_self_contained_and_escaped() -> None:
    data = [
        ("t.py::test_<script>alert(1)</script>", [_fake_request('"/><b>x')]),
        ("t.py::test_empty", []),
    ]
    page = html_report(data)
    lowered = page.lower()
    for external in ("<script src", "<link", "@import", "url(", "src="):
        assert external not in lowered
    assert "<script>alert(1)" not in page
    assert "test_&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '"/><b>x' not in page
    trace = chrome_trace(data)
    assert list(_processes(trace)) == ["t.py::test_<script>alert(1)</script>"]


def _fake_request(path: str) -> dict[str, Any]:
    event = {"thread": "MainThread", "task": None, "after_return": False}
    return {
        "id": 1,
        "method": "GET",
        "url": f"https://example.test{path}",
        "phase": "call",
        "origin": None,
        "status": None,
        "error": "ConnectError: boom",
        "started_at": 10.0,
        "returned_at": 10.002,
        "closed_at": None,
        "reused": None,
        "connection": None,
        "events": [
            {**event, "hook": "get_conn", "time": 10.0, "args": {"host_port": "x:443"}},
            {**event, "hook": "dns_start", "time": 10.001, "args": {"host": "x"}},
        ],
    }


def test_report_paths_naming(tmp_path: Path) -> None:
    expected = (tmp_path / "run.json", tmp_path / "run.html")
    assert report_paths(tmp_path / "run") == expected
    assert report_paths(tmp_path / "run.json") == expected
    assert report_paths(tmp_path / "run.HTML") == expected
    assert report_paths(tmp_path / "run.v2") == (
        tmp_path / "run.v2.json",
        tmp_path / "run.v2.html",
    )


def test_report_in_an_impossible_directory_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_never_runs(): raise AssertionError")
    (pytester.path / "afile").write_text("not a directory")
    result = pytester.runpytest("-p", "httptrace", "--httptrace-report=afile/run")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --httptrace-report=afile/run: cannot create the directory *afile*"]
    )
    (pytester.path / "dir.json").mkdir()
    result = pytester.runpytest("-p", "httptrace", "--httptrace-report=dir")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --httptrace-report=dir: *dir.json is a directory*"]
    )


def test_report_only_observes_no_leak_check_unless_asked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        kept = []

        @pytest.fixture(scope="module", autouse=True)
        def close_at_the_end():
            yield
            for client in kept:
                client.close()

        def leave_a_stream_open(server):
            client = server.client()
            kept.append(client)
            client.send(client.build_request("GET", "/stream/2"), stream=True)

        def test_recorded_for_the_report_only(httptrace_server):
            leave_a_stream_open(httptrace_server)

        @pytest.mark.httptrace(leaks="error")
        def test_asked_for_leak_checks(httptrace_server):
            leave_a_stream_open(httptrace_server)

        def test_last():
            pass
        """
    )
    result = pytester.runpytest(
        "-p", "httptrace", "-W", "error", "--httptrace-report=run"
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_asked_for_leak_checks*"])
    trace = json.loads((pytester.path / "run.json").read_text())
    assert len(_processes(trace)) == 2  # both were recorded


def test_report_under_xdist_is_written_by_the_controller(
    pytester: pytest.Pytester,
) -> None:
    result = _run_suite(pytester, "-p", "xdist", "-n", "2", "--httptrace-report=x")
    result.assert_outcomes(passed=3)
    assert result.stdout.str().count("httptrace report: ") == 1
    trace = json.loads((pytester.path / "x.json").read_text())
    assert sorted(name.split("::")[1] for name in _processes(trace)) == [
        "test_reuse_then_close",
        "test_two_h2_streams",
    ]
    _assert_properly_nested(trace)


# -- in a real browser ----------------------------------------------------------------

PHASE_RGB = {"tls": (0x9B, 0x4D, 0xCA), "transfer": (0x2F, 0x7F, 0xD8)}


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(
            bytes(line)
            if bpp == 3
            else bytes(v for j in range(0, stride, 4) for v in line[j : j + 3])
        )
        previous = line
    return width, height, rows


def _rows_with(rows: list[bytes], rgb: tuple[int, int, int]) -> list[int]:
    needle = bytes(rgb)
    return [
        y
        for y, row in enumerate(rows)
        if any(row[x : x + 3] == needle for x in range(0, len(row), 3))
    ]


def test_report_renders_in_headless_chromium(
    httptrace_server: Any, tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Recorder.start() as recorder:
        with httptrace_server.client() as client:
            client.get("/")
            client.get("/close")
            client.get("/")

        async def streams() -> None:
            async with httptrace_server.async_client(http2=True) as client:
                await asyncio.gather(client.get("/delay/0.02"), client.get("/"))

        asyncio.run(streams())
    requests = recorder.all_requests
    _, html_path = write_report(
        tmp_path / "report" / "run",
        [
            ("test_h1.py::test_two_connections", requests[:3]),
            ("test_h2.py::test_streams", requests[3:]),
        ],
    )
    screenshot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1200,800",
            f"--screenshot={screenshot}",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert screenshot.exists(), proc.stderr
    width, height, rows = _png_pixels(screenshot.read_bytes())
    assert (width, height) == (1200, 800)
    # Three connections were dialed (two HTTP/1.1, one HTTP/2): three TLS bars, each
    # on a track of its own, so at three separate heights on the page.
    tls_rows = _rows_with(rows, PHASE_RGB["tls"])
    bands = [y for i, y in enumerate(tls_rows) if i == 0 or tls_rows[i - 1] != y - 1]
    legend = bands.pop(0)  # the legend's swatch comes first
    assert legend < 120
    # Usually three dials (two HTTP/1.1, one HTTP/2); the two concurrent HTTP/2
    # requests may race for a new connection, so count what was really dialed.
    dialed = [r for r in requests if r.got_conn is not None and not r.got_conn.reused]
    assert len(dialed) >= 3
    assert len(bands) == len(dialed), (tls_rows, [(r.url, r.hooks) for r in requests])
    assert _rows_with(rows, PHASE_RGB["transfer"])


# -- issue #13 item 14: leaks, outcomes, refused dials, labels ------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_leaked_response_is_marked(httptrace_server: Any) -> None:
    from pytest_httptrace.waterfall import request_data

    with Recorder.start() as recorder, httptrace_server.client() as client:
        client.get("/")
        leaked = client.send(client.build_request("GET", "/stream/2"), stream=True)
        data = [request_data(r) for r in recorder.all_requests]
        leaked.close()
    page = html_report([("t.py::test_leaks", data)])
    assert page.count('class="req leaked"') == 1
    assert page.count('class="req"') == 1  # the other one, closed
    assert "GET /stream/2 → 200 · never closed</span>" in page
    assert re.search(
        r"<summary>#2 GET https://localhost:\d+/stream/2 → 200 · connection #1 "
        r"\(reused\) · never closed \(leaked\) · ",
        page,
    )
    assert "1 response never closed (leaked)." in page
    trace = chrome_trace([("t.py::test_leaks", data)])
    leaks = [
        e["args"]["leaked"] for e in trace["traceEvents"] if e.get("cat") == "request"
    ]
    assert leaks == [False, True]


def test_the_report_shows_each_tests_outcome(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_fine(httptrace_server):
            with httptrace_server.client() as client:
                client.get("/")

        def test_broken(httptrace_server):
            with httptrace_server.client() as client:
                assert client.get("/status/500").status_code == 200

        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("teardown")

        def test_teardown_error(httptrace_server, bad_teardown):
            with httptrace_server.client() as client:
                client.get("/")

        def test_quiet():
            pytest.skip("nothing to do")
        """
    )
    result = pytester.runpytest("-p", "httptrace", "--httptrace-report=run")
    result.assert_outcomes(passed=2, failed=1, skipped=1, errors=1)
    page = (pytester.path / "run.html").read_text()
    sections = re.findall(
        r'<section class="test([^"]*)" data-name="[^"]*::(\w+)"', page
    )
    assert sections == [
        ("", "test_fine"),
        (" failed", "test_broken"),
        (" failed", "test_teardown_error"),
    ]
    assert 'test_broken <span class="outcome bad">failed</span>' in page
    assert 'test_teardown_error <span class="outcome bad">error</span>' in page
    assert 'test_fine <span class="outcome ok">passed</span>' in page
    assert 'test_quiet <span class="outcome ok">skipped</span></li>' in page
    assert "2 tests failed." in page
    trace = json.loads((pytester.path / "run.json").read_text())
    labels = [
        e["args"]["labels"]
        for e in trace["traceEvents"]
        if e["name"] == "process_labels"
    ]
    assert labels == ["passed", "failed", "error"]


def test_a_refused_dial_is_not_drawn_as_a_connection() -> None:
    import httpx

    from pytest_httptrace.waterfall import request_data

    port = _closed_port()
    with (
        Recorder.start() as recorder,
        httpx.Client() as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"http://127.0.0.1:{port}/")
    [data] = [request_data(r) for r in recorder.all_requests]
    dials = [e for e in data["events"] if e["hook"] == "connect_done"]
    assert dials and all(e["args"]["err"] for e in dials)
    # Whether or not the record names a connection, the dial made none.
    fake = {
        "id": 1,
        "protocol": "HTTP/1.1",
        "local_addr": None,
        "peer_addr": None,
        "tls": None,
        "opened_at": None,
        "closed_at": None,
    }
    for request in (data, {**data, "connection": fake}):
        page = html_report([("t.py::test_refused", [request])])
        assert "connection #" not in page
        assert "<b>no connection</b>" in page
        assert "0 connections" in page
        trace = chrome_trace([("t.py::test_refused", [request])])
        [track] = [
            e["args"]["name"]
            for e in trace["traceEvents"]
            if e["name"] == "thread_name"
        ]
        assert track == "no connection"


#: Run in the page by the browser: every request label's box against every bar's box
#: and every other label's; the verdict is written into the page for --dump-dom.
_OVERLAPS = """
<script>
window.addEventListener('load', function () {
  function box(el) { var r = el.getBoundingClientRect(); return r; }
  function meet(a, b) {
    return a.left < b.right - 0.5 && b.left < a.right - 0.5 &&
           a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  }
  var labels = Array.from(document.querySelectorAll('.req-label'));
  var bars = Array.from(document.querySelectorAll('.req, .seg, .tick'));
  var bad = [];
  labels.forEach(function (label, i) {
    var a = box(label);
    if (a.width < 1) bad.push('label ' + i + ' is not shown');
    bars.forEach(function (bar) { if (meet(a, box(bar))) bad.push('bar over ' + i); });
    labels.forEach(function (other, j) {
      if (j > i && meet(a, box(other))) bad.push('labels ' + i + ' and ' + j);
    });
  });
  var out = document.createElement('pre');
  out.id = 'overlaps';
  out.textContent = labels.length + ' labels; ' + (bad.join(', ') || 'none');
  document.body.appendChild(out);
});
</script>
"""


def test_labels_are_never_under_bars_in_a_real_browser(
    httptrace_server: Any, tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Recorder.start() as recorder:
        with httptrace_server.client() as client:  # many short requests in a row
            for _ in range(8):
                client.get("/")
            client.get("/delay/0.02")
            client.get("/")  # the last one, at the right edge

        async def streams() -> None:
            async with httptrace_server.async_client(http2=True) as client:
                await asyncio.gather(client.get("/delay/0.02"), client.get("/"))

        asyncio.run(streams())
    _, html_path = write_report(
        tmp_path / "run", [("test_labels.py::test_crowded", recorder.all_requests)]
    )
    html_path.write_text(
        html_path.read_text().replace("</body>", _OVERLAPS + "</body>")
    )
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,800",
            "--dump-dom",
            html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="overlaps">(.*?)</pre>', proc.stdout)
    assert found, proc.stderr
    assert found.group(1) == f"{len(recorder.all_requests)} labels; none"


def test_the_report_shows_the_attempts_of_one_logical_request(
    tmp_path: Path, httptrace_server: Any
) -> None:
    with (
        Recorder.start() as recorder,
        httptrace_server.client(follow_redirects=True) as client,
    ):
        client.get("/redirect/1")
    _, html_path = write_report(
        tmp_path / "run", [("test_x.py::test_redirect", recorder.all_requests)]
    )
    page = html_path.read_text()
    assert "attempt 1 of 2" in page and "attempt 2 of 2" in page
