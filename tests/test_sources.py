"""The source seam: the model knows no client library.

A fake source (a dummy client that fires hooks through `TracedRequest`, as every real
source does) is registered with the model and recorded, asserted on and rendered by
the same recorder, assertions and timeline as httpx. A subprocess proves that the
model's modules, a recorder start and stop, and the registry import no client
library at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_httptrace import (
    GotConnInfo,
    assert_hook_sequence,
    assert_new_connection,
    assert_reused,
    render_timeline,
)
from pytest_httptrace import sources as registry
from pytest_httptrace.recorder import Recorder
from pytest_httptrace.sources import LibraryStatus, SourceInfo
from pytest_httptrace.trace import TracedConnection, TracedRequest, current_chain

FAKE = SourceInfo(name="fake", library="fakeclient", version="1.0")


class FakeClient:
    """A client with a one-connection pool that reports its lifecycle as a source
    does: through a TracedRequest built from the traces in effect."""

    def __init__(self) -> None:
        self.conn: object | None = None
        self.traced_conn: TracedConnection | None = None

    def get(self, url: str) -> int:
        chain = current_chain()
        if not chain:
            return 200  # nothing traces this request: the source stays out of it
        st = TracedRequest(method="GET", url=url, chain=chain, source=FAKE)
        st.fire("get_conn", "fake.test:443")
        reused = self.conn is not None
        if self.conn is None:
            self.conn = object()
            self.traced_conn = TracedConnection.of(self.conn, id=1)
        st.connection = self.traced_conn
        st.fire("got_conn", GotConnInfo(conn=self.conn, reused=reused))
        st.fire("wrote_headers")
        st.fire("wrote_request", None)
        st.fire("got_first_response_byte")
        st.status = 200
        st.returned_at = st.closed_at = st.started_at + 0.001
        st.fire("put_idle_conn", None)
        return 200


class FakeSource:
    name = "fake"
    trigger = "json"  # imported already: installed as soon as tracing starts
    internal_modules = ("test_sources",)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def libraries(self) -> list[LibraryStatus]:
        return [LibraryStatus("fakeclient", "1.0", True)]

    def install(self) -> None:
        self.calls.append("install")

    def uninstall(self) -> None:
        self.calls.append("uninstall")

    def patched_functions(self) -> dict[tuple[type, str], Any]:
        return {}

    def diagnose(self) -> list[str]:
        return ["fakeclient said why"]


@pytest.fixture
def fake_source() -> Iterator[FakeSource]:
    source = FakeSource()
    registry.register_source("fake", source)
    try:
        yield source
    finally:
        registry.unregister_source("fake")


def test_a_fake_source_is_recorded_and_asserted_like_any(
    fake_source: FakeSource,
) -> None:
    client = FakeClient()
    with Recorder.start() as rec:
        assert fake_source.calls == ["install"]
        client.get("https://fake.test/a")
        client.get("https://fake.test/b")
    assert fake_source.calls == ["install", "uninstall"]
    first, second = rec.requests
    assert first.source == FAKE and str(first.source) == "fakeclient 1.0"
    assert_hook_sequence(first, ["get_conn", "got_conn", ..., "put_idle_conn"])
    assert_new_connection(first)
    assert_reused(second)
    assert first.connection is second.connection
    assert "GET https://fake.test/a" in render_timeline(rec.requests)


def test_registry_reports_libraries_and_diagnoses(fake_source: FakeSource) -> None:
    assert "fakeclient 1.0" in registry.library_report()
    assert "fakeclient said why" in registry.diagnose_all()


def test_a_source_whose_library_is_imported_later_is_installed_on_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "late_client_lib.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = FakeSource()
    source.trigger = "late_client_lib"
    registry.register_source("late", source)
    try:
        with Recorder.start():
            assert source.calls == []  # not imported: nothing to patch yet
            import late_client_lib  # noqa: F401

            assert source.calls == ["install"]
            module = sys.modules["late_client_lib"]
            # The module keeps its own loader: nothing of ours stays in it.
            assert type(module.__loader__).__module__ != "pytest_httptrace.sources"
        assert source.calls == ["install", "uninstall"]
        assert not any(type(f).__module__ == registry.__name__ for f in sys.meta_path)
    finally:
        registry.unregister_source("late")
        sys.modules.pop("late_client_lib", None)


def test_bad_registrations_are_explained() -> None:
    with pytest.raises(ValueError, match=r"'package\.module:attribute'"):
        registry.register_source("x", "no_colon_here")
    with pytest.raises(TypeError, match="takes a Source or a dotted path"):
        registry.register_source("x", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="registered already"):
        registry.register_source("httpx", "a.b:c")


CLIENT_LIBRARIES = (
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "aiohttp",
    "urllib3",
    "requests",
    "h11",
    "h2",
    "anyio",
)


def test_the_model_imports_no_client_library() -> None:
    """The model, the recorder, the assertions, the reports and the registry, with a
    recorder started and stopped, import no client library."""
    code = textwrap.dedent(
        f"""
        import sys
        import pytest_httptrace
        from pytest_httptrace import assertions, recorder, report, sources, trace
        from pytest_httptrace import waterfall, plugin
        with recorder.Recorder.start() as rec:
            pass
        sources.library_report()
        sources.diagnose_all()
        assertions.render_timeline([])
        loaded = sorted(m for m in {CLIENT_LIBRARIES!r} if m in sys.modules)
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_an_untraced_client_library_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pycurl.py").write_text("")  # a stand-in module of that name
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pycurl", raising=False)
    import pycurl  # noqa: F401

    try:
        assert (
            "pycurl is imported in this process, but no source of pytest-httptrace "
            "traces it: its requests are not recorded."
        ) in registry.diagnose_all()
    finally:
        sys.modules.pop("pycurl", None)


def test_a_leak_hint_speaks_the_leaking_library(httptrace_server: Any) -> None:
    from pytest_httptrace import assert_no_leaks

    with Recorder.start() as rec, httptrace_server.requests_session() as session:
        response = session.get(httptrace_server.url("/stream/2"), stream=True)
        with pytest.raises(AssertionError) as info:
            assert_no_leaks(rec)
        response.close()
    message = str(info.value)
    assert "hint: use `with session.get(url, stream=True) as response:`" in message
    assert "client.stream" not in message
