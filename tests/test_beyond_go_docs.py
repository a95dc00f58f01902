"""The worked examples of docs/beyond-go.md run as written (in a pytester
subprocess, with the plugin loaded as users load it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

BEYOND_GO = Path(__file__).parents[1] / "docs" / "beyond-go.md"
EXAMPLE = re.compile(r"<!-- example -->\n```python\n(.*?)```", re.S)


def test_the_beyond_go_examples_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not on the client-library axis: the examples are written against httpx.
    examples = EXAMPLE.findall(BEYOND_GO.read_text())
    assert len(examples) == 5
    for name in list(os.environ):
        if name.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    files = {f"test_example_{i}": code for i, code in enumerate(examples)}
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess(
        "-p", "httptrace", "-p", "no:cacheprovider", "-W", "error"
    )
    result.assert_outcomes(passed=len(examples))
