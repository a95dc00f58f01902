"""The aiohttp source as the registry sees it: installed only while tracing, removed
exactly (the isolation checks of the root conftest cover it), a clear message for an
unsupported aiohttp, no aiohttp import of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import aiohappyeyeballs.impl
import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler

import conftest
from pytest_httptrace import Recorder, sources
from pytest_httptrace.aiohttp_trace import AIOHTTP, _patches


def _own(owner: object, name: str) -> object:
    return vars(owner).get(name)


def test_installed_while_tracing_then_exactly_as_shipped() -> None:
    shipped = {(o, n): _own(o, n) for o, n, _ in _patches._PATCHES}
    assert _own(ResponseHandler, "read") is None  # inherited from DataQueue
    with Recorder.start():
        assert AIOHTTP in sources.active_sources()
        for owner, name, _ in _patches._PATCHES:
            patched = _own(owner, name)
            assert getattr(patched, sources.PATCH_MARK, False), (owner, name)
        _patches.install()  # idempotent: nothing wrapped twice
        assert (
            _own(ResponseHandler, "read").__wrapped__ is aiohttp.streams.DataQueue.read
        )
    assert {(o, n): _own(o, n) for o, n, _ in _patches._PATCHES} == shipped
    assert "read" not in vars(ResponseHandler)
    _patches.uninstall()  # idempotent
    assert {(o, n): _own(o, n) for o, n, _ in _patches._PATCHES} == shipped


def test_a_leftover_patch_is_named_by_the_isolation_check() -> None:
    assert conftest._patched_now() == []
    _patches.install()
    try:
        leftovers = conftest._patched_now()
    finally:
        _patches.uninstall()
    assert "aiohttp.client.ClientSession._request" in leftovers
    assert "aiohappyeyeballs.impl._connect_sock" in leftovers
    assert "aiohttp.client_proto.ResponseHandler.read" in leftovers
    assert len(leftovers) == len(_patches._PATCHES)
    assert conftest._patched_now() == []


def test_an_unsupported_aiohttp_is_one_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiohttp, "__version__", "3.13.2")
    monkeypatch.setattr(_patches, "_checked", False)
    with pytest.raises(sources.UnsupportedVersionError) as info:
        Recorder.start()
    message = str(info.value)
    assert "aiohttp 3.14.x" in message and "found aiohttp 3.13.2" in message
    assert "-p no:httptrace" in message
    assert not _patches.installed() and sources.active_sources() == []
    assert vars(aiohappyeyeballs.impl)["_connect_sock"].__module__ == (
        "aiohappyeyeballs.impl"
    )


def test_the_source_imports_no_aiohttp_until_installed() -> None:
    code = textwrap.dedent(
        """
        import sys
        from pytest_httptrace import sources
        import pytest_httptrace.aiohttp_trace as package
        [status] = package.AIOHTTP.libraries()
        assert status.library == "aiohttp" and status.supported, status
        assert package.AIOHTTP.patched_functions() == {}
        assert "aiohttp" not in sys.modules
        from pytest_httptrace import Recorder
        with Recorder.start():
            assert "aiohttp" not in sys.modules
            import aiohttp  # a late import: installed as it completes
            assert getattr(aiohttp.ClientSession._request, sources.PATCH_MARK, False)
        assert not hasattr(aiohttp.ClientSession._request, sources.PATCH_MARK)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_request_in_flight_keeps_no_recorder_alive(httptrace_server: Any) -> None:
    """Neither our maps nor the contexts asyncio copied while the request dialed
    (the connection's transport callbacks keep one for its whole life) hold the
    request, and so its recorder, once tracing stopped."""
    import asyncio
    import gc
    import weakref

    from pytest_httptrace.aiohttp_trace import _core

    async def main() -> weakref.ref[Recorder]:
        async with httptrace_server.aiohttp_session() as session:
            recorder = Recorder.start()
            response = await session.get("/stream/2?gap=0.2")  # not read yet
            recorder.stop()
            assert len(recorder.requests) == 1
            ref = weakref.ref(recorder)
            del recorder
            gc.collect()
            assert not _core._ACTIVE and not _core._BY_REQUEST
            response.release()
        await asyncio.sleep(0.05)
        return ref

    assert asyncio.run(main())() is None
