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
    # In a subprocess: an in-process run after another one sees the package's cached
    # lazy names bound to modules the first run's sys.modules snapshot dropped.
    result = pytester.runpytest_subprocess("-p", "httptrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert_reused*", "*new connection*"])


# -- the README and the docs give the same commands ------------------------------------

INDEX = Path(__file__).parent.parent / "docs" / "index.md"
COMMAND = re.compile(r"<!-- ([\w-]+)-command -->\n```\n(.*?)\n```", re.S)


def test_readme_and_docs_give_the_same_commands() -> None:
    """Issue #13 item 15: one source for the commands a reader copies."""
    readme = dict(COMMAND.findall(README.read_text()))
    docs = dict(COMMAND.findall(INDEX.read_text()))
    assert sorted(readme) == sorted(docs) == ["install", "main", "test"]
    assert readme == docs


def test_no_page_says_to_install_from_pypi() -> None:
    """The package is not published: `pip install pytest-httptrace` fails."""
    pages = [README, *sorted(INDEX.parent.glob("*.md"))]
    pypi = re.compile(r"pip install (-\S+ )*pytest-httptrace\b")
    for page in pages:
        assert not pypi.search(page.read_text()), page
