"""The README's first example runs as written, and fails when it should."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).parent.parent / "README.md"


def _first_example() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md has no python example"
    return match.group(1)


def test_first_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example_from_readme=_first_example())
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=1)


def test_first_example_fails_for_a_client_built_per_request(
    pytester: pytest.Pytester,
) -> None:
    broken = _first_example().replace(
        '        client.get(httptrace_server.url("/"))\n'
        '        client.get(httptrace_server.url("/"))\n',
        '        client.get(httptrace_server.url("/"))\n'
        "    with httptrace_server.client() as client:\n"
        '        client.get(httptrace_server.url("/"))\n',
    )
    assert broken != _first_example()
    pytester.makepyfile(test_example_from_readme=broken)
    result = pytester.runpytest("-p", "httptrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert_reused*", "*new connection*"])
