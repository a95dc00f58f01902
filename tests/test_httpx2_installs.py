"""httpx and httpx2 in one process: each alone, side by side, and aliased.

"httpx not installed" is made the way Python itself blocks an import:
``sys.modules["httpx"] = None`` before anything imports it, in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import httpx2
import pytest

from pytest_httptrace import assert_hook_sequence, assert_reused, render_timeline
from pytest_httptrace.recorder import Recorder
from pytest_httptrace.server import TestServer
from pytest_httptrace.waterfall import render_waterfall, request_data

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_httpx_and_httpx2_side_by_side_in_one_test(
    httptrace_recorder: Recorder, httptrace_server: TestServer
) -> None:
    with (
        httptrace_server.client(lib="httpx") as one,
        httptrace_server.client(lib="httpx2") as two,
    ):
        for client in (one, two, one, two):
            client.get("/").raise_for_status()
    a1, b1, a2, b2 = httptrace_recorder.requests
    assert [str(r.source) for r in (a1, b1)] == [
        f"httpx {httpx.__version__}",
        f"httpx2 {httpx2.__version__}",
    ]
    assert_reused(a2)
    assert_reused(b2)
    assert a1.connection is a2.connection and b1.connection is b2.connection
    assert a1.connection is not b1.connection
    assert len(httptrace_server.log.connections) == 2
    # With two libraries in play, the timeline and the waterfall name each one.
    timeline = render_timeline(httptrace_recorder.requests)
    assert f"  [httpx {httpx.__version__}]" in timeline
    assert f"  [httpx2 {httpx2.__version__}]" in timeline
    drawn = render_waterfall([request_data(r) for r in httptrace_recorder.requests])
    assert f"[httpx2 {httpx2.__version__}, HTTP/1.1, connection #2" in drawn
    alone = render_timeline([a1, a2])
    assert "  [httpx " not in alone  # one library: nothing to tell apart


def test_an_httpx2_hook_error_is_raised_as_on_httpx(
    httptrace_server: TestServer,
) -> None:
    from pytest_httptrace import ClientTrace, RequestAbortedByHook, with_client_trace

    def boom(code: int, headers: object) -> None:
        raise ValueError("no early hints here")

    with (
        httptrace_server.client(lib="httpx2", http2=True) as client,
        with_client_trace(ClientTrace(got_1xx_response=boom)),
        pytest.raises(httpx2.TransportError) as info,
    ):
        client.get("/early-hints")
    assert isinstance(info.value, RequestAbortedByHook)
    assert isinstance(info.value.__cause__, ValueError)


def test_httpx2_alone_without_httpx_installed(tmp_path: Path) -> None:
    """Plugin, fixtures and CLI with httpx blocked: httpx2 is the default."""
    (tmp_path / "test_only_httpx2.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_recorded(httptrace_recorder, httptrace_server):
                with httptrace_server.client() as client:
                    client.get("/")
                    client.get("/")
                first, second = httptrace_recorder.requests
                assert str(first.source).startswith("httpx2 ")
                assert second.got_conn.reused
                assert "httpx" not in sys.modules or sys.modules["httpx"] is None
            """
        )
    )
    result = _run(
        """
        import sys
        sys.modules["httpx"] = sys.modules["httpcore"] = None
        import pytest
        code = pytest.main(["-p", "httptrace", "-q", "-W", "error", "-p",
                            "no:cacheprovider", "test_only_httpx2.py"])
        from pytest_httptrace.__main__ import main
        sys.exit(code or main([]))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
    assert "a tour of Go's httptrace hooks on httpx2" in result.stdout


def test_aliased_httpx_is_traced_once(tmp_path: Path) -> None:
    """Under ``httpx2.alias_httpx()`` the parity tests hold (every hook once) and
    the isolation checks find every shipped function restored."""
    result = _run(
        f"""
        import sys
        import httpx2
        httpx2.alias_httpx()
        import httpx
        assert httpx is httpx2
        import pytest
        sys.exit(pytest.main(["-p", "httptrace", "-q", "-W", "error", "-p",
                              "no:cacheprovider", "-p", "no:randomly",
                              {str(ROOT / "tests" / "test_hooks_parity.py")!r},
                              "-k", "cold_then_reused or header_fields or 1xx"]))
        """,
        ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_alias_report_header_says_so(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_ok(): pass\n")
    result = _run(
        """
        import sys
        import httpx2
        httpx2.alias_httpx()
        import pytest
        sys.exit(pytest.main(["-p", "httptrace", "-p", "no:cacheprovider"]))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"httpx {httpx2.__version__} (aliased to httpx2)" in result.stdout


def test_unsupported_httpx2_version_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_httptrace.sources import UnsupportedVersionError

    monkeypatch.setattr(httpx2, "__version__", "3.0.0")
    with pytest.raises(UnsupportedVersionError) as info:
        Recorder.start()
    assert str(info.value).startswith(
        "pytest-httptrace supports httpx2 2.16.x, found httpx2 3.0.0."
    )


def test_a_transport_that_bypasses_the_pool_is_named(
    httptrace_recorder: Recorder,
) -> None:
    def app(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200)

    with httpx2.Client(transport=httpx2.MockTransport(app)) as client:
        client.get("https://api.test/")
    with pytest.raises(AssertionError) as info:
        assert_hook_sequence(httptrace_recorder, ["get_conn", ...])
    message = str(info.value)
    assert "call was answered by httpx2.MockTransport, an httpx2 transport" in message
    assert "bypasses the connection pool" in message


def test_unsupported_version_in_a_test_run_is_one_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("import httpx2\nhttpx2.__version__ = '3.0.0'\n")
    pytester.makepyfile("def test_it(httptrace_recorder):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "httptrace")
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    # Once in the error (the short summary, full length under CI=true, may repeat it).
    errors = text.split("short test summary info")[0]
    assert errors.count("supports httpx2 2.16.x, found httpx2 3.0.0") == 1
    assert "During handling" not in text
    assert "KeyError" not in text and "Traceback" not in text
