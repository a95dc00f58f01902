"""``--httptrace-har`` / ini ``httptrace_har`` / marker ``har=``: the files, under
xdist too, and usage errors for paths and marker arguments that cannot work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from har_check import haralyzer_entries, validate

SUITE = """
    import pytest

    def test_reuse_then_close(httptrace_server):
        with httptrace_server.client() as client:
            for path in ("/", "/", "/close"):
                client.get(path)

    def test_h2(httptrace_server):
        with httptrace_server.client(http2=True) as client:
            client.get("/")

    def test_no_request():
        pass
"""


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    validate(document)
    return document


def _pages(document: dict[str, Any]) -> list[str]:
    return [p["id"].split("::")[1] for p in document["log"]["pages"]]


def test_one_file_per_run_with_a_page_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(
        "-p", "httptrace", "-W", "error", "--httptrace-har=a.har"
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["httptrace HAR: *a.har (open it in *"])
    document = _load(pytester.path / "a.har")
    assert _pages(document) == ["test_reuse_then_close", "test_h2"]
    entries = document["log"]["entries"]
    assert [e["pageref"].split("::")[1] for e in entries] == [
        "test_reuse_then_close"
    ] * 3 + ["test_h2"]
    assert [e["_reused"] for e in entries] == [False, True, True, False]
    read = haralyzer_entries(pytester.path / "a.har")
    assert [e.status for e in read] == [200, 200, 200, 200]
    assert read[0].port == read[1].port == read[2].port


def test_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeini("[pytest]\nhttptrace_har = out/run.har\n")
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=3)
    assert len(_load(pytester.path / "out" / "run.har")["log"]["entries"]) == 4


def test_under_xdist_the_controller_writes_the_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(
        "-p", "httptrace", "-p", "xdist", "-n", "2", "-W", "error",
        "--httptrace-har=x.har",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    assert result.stdout.str().count("httptrace HAR: ") == 1
    document = _load(pytester.path / "x.har")
    assert sorted(_pages(document)) == ["test_h2", "test_reuse_then_close"]
    assert len(document["log"]["entries"]) == 4


def test_the_marker_writes_a_tests_own_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.httptrace(har="hars/one.har")
        def test_one(httptrace_server):
            with httptrace_server.client() as client:
                client.get("/status/201")

        def test_other(httptrace_server):
            with httptrace_server.client() as client:
                client.get("/")
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=2)
    document = _load(pytester.path / "hars" / "one.har")
    [entry] = document["log"]["entries"]
    assert entry["response"]["status"] == 201
    assert entry["_test"].endswith("::test_one")
    assert sorted(p.name for p in pytester.path.rglob("*.har")) == ["one.har"]


def test_a_leak_is_still_a_valid_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.httptrace(leaks="off", har="leak.har")
        def test_leak(httptrace_server):
            client = httptrace_server.client()
            client.send(client.build_request("GET", "/stream/2"), stream=True)
            pytest.leaked = client

        def test_close():
            pytest.leaked.close()
        """
    )
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=2)
    [entry] = _load(pytester.path / "leak.har")["log"]["entries"]
    assert (entry["_leaked"], entry["_incomplete"]) == (True, True)


def test_unwritable_paths_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_never_runs(): raise AssertionError")
    (pytester.path / "afile").write_text("not a directory")
    result = pytester.runpytest("-p", "httptrace", "--httptrace-har=afile/run.har")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --httptrace-har=afile/run.har: cannot create the directory *afile*"]
    )
    (pytester.path / "dir.har").mkdir()
    result = pytester.runpytest("-p", "httptrace", "--httptrace-har=dir.har")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --httptrace-har=dir.har: *dir.har is a directory*"]
    )


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("har=3", "*httptrace(har=...) takes a path, got 3"),
        ("har=''", "*httptrace(har=...) takes a path, got ''"),
        (
            "har='afile/x.har'",
            "*httptrace(har=...)=afile/x.har: cannot create the directory *afile*",
        ),
    ],
)
def test_bad_marker_arguments_are_usage_errors_at_collection(
    pytester: pytest.Pytester, argument: str, message: str
) -> None:
    (pytester.path / "afile").write_text("not a directory")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.httptrace({argument})
        def test_never_runs():
            raise AssertionError
        """
    )
    result = pytester.runpytest("-p", "httptrace")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    result.stdout.no_fnmatch_line("*test_never_runs*FAILED*")


def test_the_docs_example_passes(pytester: pytest.Pytester) -> None:
    page = (Path(__file__).parents[1] / "docs" / "export.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(example)
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=1)
    validate(json.loads((pytester.path / "login.har").read_text()))
