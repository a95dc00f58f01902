"""The ``httptrace`` CLI: the tour, tracing a URL, --json, and bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_httptrace.__main__ import main
from pytest_httptrace.waterfall import PHASES, render_waterfall

TOUR_SECTIONS = [
    "1. A cold request",
    "2. The same client again: a reused connection",
    "3. Two concurrent HTTP/2 streams on one connection",
    "4. An upload with Expect: 100-continue (stock httpx)",
    "5. The same upload in the opt-in waiting mode",
    "6. Early hints (103) over HTTP/2",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["NO_COLOR"] = "1"
    return env


def _run(
    *args: str, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(command or [sys.executable, "-m", "pytest_httptrace"]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )


def _sections(text: str) -> dict[str, str]:
    """The tour's output, split at its section headings."""
    sections: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        heading = next((s for s in TOUR_SECTIONS if line.startswith(f"━━ {s} ")), None)
        if heading is not None:
            current = heading
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def _hooks(section: str) -> list[str]:
    """Hook names of the hook-call lines of a section, in order."""
    names = []
    for line in section.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].replace(".", "").isdigit():
            names.append(parts[1])
    return names


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cacert(httptrace_server: Any, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    httptrace_server.ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- the tour -------------------------------------------------------------------------


def test_tour_in_process_shows_every_section(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    sections = _sections(out)
    assert list(sections) == TOUR_SECTIONS

    cold = sections[TOUR_SECTIONS[0]]
    assert "[HTTP/1.1, connection #1 (new)]" in cold
    assert [h for h in _hooks(cold) if h != "wrote_header_field"] == [
        "get_conn",
        "dns_start",
        "dns_done",
        "connect_start",
        "connect_done",
        "tls_handshake_start",
        "tls_handshake_done",
        "got_conn",
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "put_idle_conn",
    ]
    for phase in PHASES:
        assert f"  {phase:<10}│█" in cold or f"  {phase:<10}│ " in cold

    reused = sections[TOUR_SECTIONS[1]]
    assert "[HTTP/1.1, connection #1 (reused)]" in reused
    assert "  dns       │ skipped: reused connection #1" in reused
    assert "dns_start" not in _hooks(reused)

    streams = sections[TOUR_SECTIONS[2]]
    assert "[HTTP/2, connection #2 (new)]" in streams
    assert "[HTTP/2, connection #2 (reused)]" in streams
    assert "put_idle_conn" not in _hooks(streams)

    stock = _hooks(sections[TOUR_SECTIONS[3]])
    assert "wait_100_continue" not in stock
    assert stock.index("wrote_request") < stock.index("got_100_continue")
    assert "Stock httpx does not wait for 100 Continue" in out

    waiting = _hooks(sections[TOUR_SECTIONS[4]])
    assert waiting.index("wait_100_continue") < waiting.index("got_100_continue")
    assert waiting.index("got_100_continue") < waiting.index("wrote_request")

    hints = sections[TOUR_SECTIONS[5]]
    assert "got_1xx_response         code=103" in hints
    assert "link: </style.css>; rel=preload; as=style" in hints
    assert "7 requests on 4 connections" in out


def test_tour_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == 1
    assert document["error"] is None
    assert [g["title"] for g in document["groups"]] == TOUR_SECTIONS
    requests = [r for g in document["groups"] for r in g["requests"]]
    assert len(requests) == 7
    first = requests[0]
    assert first["connection"]["protocol"] == "HTTP/1.1"
    assert [s["name"] for s in first["spans"]] == list(PHASES)
    assert first["events"][0]["hook"] == "get_conn"
    assert all(e["time"] >= 0 for r in requests for e in r["events"])
    hints = document["groups"][5]["requests"][0]
    (interim,) = [e for e in hints["events"] if e["hook"] == "got_1xx_response"]
    assert interim["args"]["code"] == 103
    assert ["link", "</style.css>; rel=preload; as=style"] in interim["args"]["headers"]


def test_tour_as_a_subprocess_and_console_script() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert all(f"━━ {s} " in proc.stdout for s in TOUR_SECTIONS)
    assert "Traceback" not in proc.stderr
    script = Path(sys.executable).with_name("httptrace")
    if not script.exists():  # pragma: no cover - installed without scripts
        pytest.skip(f"no console script at {script}")
    proc = _run("--json", command=[str(script)])
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["groups"]) == len(TOUR_SECTIONS)


def test_closed_pipe_is_not_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_httptrace"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    with proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == b"httptrace "
        proc.stdout.close()  # like `httptrace | head -c 10`
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
    assert "Traceback" not in stderr, stderr


def test_tour_takes_no_request_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--http2", "--repeat", "2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "--http2, --repeat need a URL (the tour takes no options): httptrace URL "
        "--http2 --repeat ...\n"
    )


def test_http2_alone_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #13 item 15: not just "need a URL"."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--http2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: --http2 needs a URL: `httptrace URL --http2` offers HTTP/2 to that "
        "server. The tour takes no options: it already shows HTTP/2 (steps 3 and 6: "
        "two streams on one connection, early hints); run `httptrace` alone to see "
        "them.\n"
    )


def test_help_and_docs_agree_on_cacert() -> None:
    """Issue #13 item 15: --cacert replaces the default CAs (ssl's cafile= does not
    load them); --help said "also"."""
    from pytest_httptrace.__main__ import build_parser

    help_text = " ".join(build_parser().format_help().split())
    assert "--cacert FILE trust this CA bundle (PEM) instead of the default ones" in (
        help_text
    )
    docs = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    assert "| `--cacert FILE` | trust this CA bundle (PEM) instead of the default " in (
        docs
    )


def test_cacert_replaces_the_default_cas(
    httptrace_server: Any,
    cacert: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server's CA made a default one (SSL_CERT_FILE): trusted without --cacert,
    not with --cacert naming another CA, as "instead of" says."""
    import trustme

    monkeypatch.setenv("SSL_CERT_FILE", cacert)
    url = httptrace_server.url("/")
    assert main([url]) == 0
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    capsys.readouterr()
    assert main([url, "--cacert", str(other)]) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().out


# -- one URL --------------------------------------------------------------------------


def test_url_with_repeat_shows_reuse(
    httptrace_server: Any, cacert: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = httptrace_server.url("/")
    assert main([url, "--cacert", cacert, "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert f"GET {url} (x2)" in out
    assert "connection #1 (new)" in out
    assert "connection #1 (reused)" in out
    assert "skipped: reused connection #1" in out


def test_url_json_post_with_data_and_headers(
    httptrace_server: Any, cacert: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = httptrace_server.url("/echo")
    argv = [url, "--http2", "--cacert", cacert, "--json"]
    argv += ["--data", "abc", "--header", "X-Test: 1", "-H", "X-Other:two"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    (group,) = document["groups"]
    (request,) = group["requests"]
    assert (request["method"], request["status"]) == ("POST", 200)
    assert request["connection"]["protocol"] == "HTTP/2"
    fields = [
        (e["args"]["key"], e["args"]["values"])
        for e in request["events"]
        if e["hook"] == "wrote_header_field"
    ]
    assert ("x-test", ["1"]) in fields
    assert ("x-other", ["two"]) in fields
    assert ("content-length", ["3"]) in fields
    tls = next(e for e in request["events"] if e["hook"] == "tls_handshake_done")
    assert tls["args"]["state"]["negotiated_protocol"] == "h2"
    assert len(tls["args"]["state"]["peer_certificate_sha256"]) == 64
    assert httptrace_server.log.requests[-1].method == "POST"


def test_unreachable_url_prints_hooks_and_error() -> None:
    url = f"https://localhost:{_closed_port()}/"
    proc = _run(url)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    hooks = _hooks(proc.stdout)
    assert hooks[:3] == ["get_conn", "dns_start", "dns_done"]
    assert "connect_start" in hooks and "connect_done" in hooks
    assert "got_conn" not in hooks
    assert "error: ConnectError:" in proc.stdout
    assert "Connection refused" in proc.stdout
    assert "hint: nothing listens on that address and port" in proc.stdout


def test_untrusted_certificate_is_a_tls_failure(
    httptrace_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([httptrace_server.url("/")]) == 1
    out = capsys.readouterr().out
    hooks = _hooks(out)
    assert hooks[-2:] == ["tls_handshake_start", "tls_handshake_done"]
    assert (
        "state=(no handshake) err='ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]"
        in out
    )
    assert "hint: the server's certificate is not trusted" in out
    assert "--cacert FILE" in out
    assert not httptrace_server.log.requests  # nothing got through


def test_name_that_does_not_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["https://does-not-exist.invalid/", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert "ConnectError" in document["error"]
    (request,) = document["groups"][0]["requests"]
    hooks = [e["hook"] for e in request["events"]]
    assert hooks == ["get_conn", "dns_start", "dns_done"]
    assert request["events"][2]["args"]["addrs"] == []
    assert "gaierror" in request["events"][2]["args"]["err"]
    assert [s["name"] for s in request["spans"]] == ["dns"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["example.org"], "the URL needs a scheme: did you mean https://example.org ?"),
        (["https://x.invalid/", "-H", "no colon"], "--header needs 'Name: value'"),
        (["https://x.invalid/", "--repeat", "0"], "must be at least 1"),
        (["https://x.invalid/", "--data", "@/does/not/exist"], "cannot read the file"),
        (["https://x.invalid/", "--cacert", "/does/not/exist"], "--cacert"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# -- the waterfall renderer ------------------------------------------------------------


def test_waterfall_ascii_and_color(
    httptrace_server: Any, capsys: pytest.CaptureFixture[str], cacert: str
) -> None:
    assert main([httptrace_server.url("/"), "--cacert", cacert, "--json"]) == 0
    (request,) = json.loads(capsys.readouterr().out)["groups"][0]["requests"]
    header = next(e for e in request["events"] if e["hook"] == "wrote_header_field")
    header["args"]["values"] = ["café"]
    ascii_text = render_waterfall([request], unicode=False, width=70)
    assert ascii_text.isascii()
    assert "values=['caf\\xe9']" in ascii_text
    assert "  tls       |" in ascii_text and "#" in ascii_text
    assert "\x1b[" not in ascii_text
    colored = render_waterfall([request], color=True)
    assert "\x1b[35m" in colored  # tls, magenta
    no_headers = render_waterfall([request], headers=False)
    assert "wrote_header_field" not in no_headers
    assert "wrote_header_field" in ascii_text
    assert render_waterfall([]) == "(no request was recorded)\n"
