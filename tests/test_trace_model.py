"""The trace model on its own: construction, composition, context propagation."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

from pytest_httptrace import (
    HOOK_NAMES,
    ClientTrace,
    GotConnInfo,
    context_client_trace,
    with_client_trace,
)
from pytest_httptrace.trace import TracedRequest, compose, current_chain


def test_sixteen_hooks_with_go_names() -> None:
    assert len(HOOK_NAMES) == 16
    assert HOOK_NAMES[0] == "get_conn"
    assert set(HOOK_NAMES) == {
        "get_conn",
        "got_conn",
        "put_idle_conn",
        "got_first_response_byte",
        "got_100_continue",
        "got_1xx_response",
        "dns_start",
        "dns_done",
        "connect_start",
        "connect_done",
        "tls_handshake_start",
        "tls_handshake_done",
        "wrote_header_field",
        "wrote_headers",
        "wait_100_continue",
        "wrote_request",
    }
    trace = ClientTrace()
    assert all(getattr(trace, name) is None for name in HOOK_NAMES)


def test_unknown_hook_suggests_closest_name() -> None:
    with pytest.raises(TypeError) as info:
        ClientTrace(got_con=print)  # type: ignore[call-arg]
    message = str(info.value)
    assert "unknown hook 'got_con'" in message
    assert "Did you mean 'got_conn'?" in message
    assert "wrote_request" in message  # lists the valid names


def test_non_callable_hook_is_rejected_by_name() -> None:
    with pytest.raises(TypeError, match=r"ClientTrace\.got_conn must be callable"):
        ClientTrace(got_conn=42)  # type: ignore[arg-type]


def test_async_hook_is_rejected_with_reason() -> None:
    async def on_conn(info: GotConnInfo) -> None:
        pass

    with pytest.raises(TypeError, match="is an async function: hooks are plain"):
        ClientTrace(got_conn=on_conn)


def test_positional_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="keyword arguments only"):
        ClientTrace(print)  # type: ignore[misc]


def test_compose_calls_newer_first_with_identical_arguments() -> None:
    calls: list[tuple[str, Any]] = []
    old = ClientTrace(get_conn=lambda hp: calls.append(("old", hp)))
    new = ClientTrace(get_conn=lambda hp: calls.append(("new", hp)))
    composed = compose(new, old)
    assert composed.get_conn is not None
    composed.get_conn("example.org:443")
    assert calls == [("new", "example.org:443"), ("old", "example.org:443")]


def test_with_client_trace_nests_and_restores() -> None:
    calls: list[str] = []
    outer = ClientTrace(wrote_headers=lambda: calls.append("outer"))
    inner = ClientTrace(wrote_headers=lambda: calls.append("inner"))
    assert context_client_trace() is None
    with with_client_trace(outer):
        with with_client_trace(inner):
            effective = context_client_trace()
            assert effective is not None and effective.wrote_headers is not None
            effective.wrote_headers()
        assert calls == ["inner", "outer"]
        assert context_client_trace() is not None
        assert current_chain() == (outer,)
    assert context_client_trace() is None
    assert current_chain() == ()


def test_same_trace_twice_runs_twice() -> None:
    calls: list[str] = []
    trace = ClientTrace(wrote_headers=lambda: calls.append("x"))
    with with_client_trace(trace), with_client_trace(trace):
        request = TracedRequest(method="GET", url="https://x/", chain=current_chain())
        request.fire("wrote_headers")
    assert calls == ["x", "x"]


def test_empty_trace_is_harmless() -> None:
    with with_client_trace(ClientTrace()):
        request = TracedRequest(method="GET", url="https://x/", chain=current_chain())
        request.fire("got_first_response_byte")
    assert request.hook_errors == []


def test_got_1xx_newer_exception_wins_and_both_run() -> None:
    calls: list[str] = []

    def newer(code: int, headers: object) -> None:
        calls.append("newer")
        raise ValueError("newer")

    def older(code: int, headers: object) -> None:
        calls.append("older")
        raise KeyError("older")

    composed = compose(
        ClientTrace(got_1xx_response=newer), ClientTrace(got_1xx_response=older)
    )
    assert composed.got_1xx_response is not None
    with pytest.raises(ValueError, match="newer") as info:
        composed.got_1xx_response(103, {})
    assert calls == ["newer", "older"]
    assert any("older" in note for note in info.value.__notes__)


def test_fire_keeps_hook_exceptions_for_later() -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    trace = ClientTrace(wrote_headers=boom)
    request = TracedRequest(method="GET", url="https://x/", chain=(trace,))
    request.fire("wrote_headers")  # does not raise into the caller
    error = request.take_hook_error()
    assert isinstance(error, RuntimeError)
    assert "ClientTrace.wrote_headers hook of GET https://x/" in error.__notes__[0]
    assert request.take_hook_error() is None


def test_asyncio_tasks_see_their_own_trace() -> None:
    seen: dict[str, ClientTrace | None] = {}
    a, b = ClientTrace(), ClientTrace()

    async def worker(name: str, trace: ClientTrace) -> None:
        with with_client_trace(trace):
            await asyncio.sleep(0.01)
            seen[name] = context_client_trace()

    async def main() -> None:
        await asyncio.gather(worker("a", a), worker("b", b))
        seen["after"] = context_client_trace()

    asyncio.run(main())
    assert seen == {"a": a, "b": b, "after": None}


def test_threads_do_not_inherit_unless_context_is_copied() -> None:
    seen: list[ClientTrace | None] = []
    trace = ClientTrace()
    with with_client_trace(trace):
        plain = threading.Thread(target=lambda: seen.append(context_client_trace()))
        plain.start()
        plain.join()
        ctx = contextvars.copy_context()
        copied = threading.Thread(
            target=ctx.run, args=(lambda: seen.append(context_client_trace()),)
        )
        copied.start()
        copied.join()
    assert seen == [None, trace]


def test_with_client_trace_rejects_non_trace() -> None:
    with pytest.raises(TypeError, match="needs a ClientTrace, got dict"):
        with_client_trace({"got_conn": print})  # type: ignore[arg-type]


def test_instrumentation_installed_only_while_a_trace_is_in_effect() -> None:
    import httpx

    from pytest_httptrace.httpx_trace import _patches

    shipped = httpx.HTTPTransport.__dict__["handle_request"]
    assert not _patches.installed("httpx")
    with with_client_trace(ClientTrace()):
        assert _patches.installed("httpx")
        assert httpx.HTTPTransport.__dict__["handle_request"] is not shipped
        with with_client_trace(ClientTrace()):
            assert _patches.installed("httpx")
        assert _patches.installed("httpx")
    assert not _patches.installed()
    assert httpx.HTTPTransport.__dict__["handle_request"] is shipped


def test_unsupported_httpx_version_fails_once_with_the_range(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import httpx

    from pytest_httptrace import Recorder, trace
    from pytest_httptrace.httpx_trace import _patches
    from pytest_httptrace.sources import UnsupportedVersionError

    monkeypatch.setattr(httpx, "__version__", "9.9.9")
    with (
        pytest.raises(UnsupportedVersionError) as info,
        with_client_trace(ClientTrace()),
    ):
        pass
    message = str(info.value)
    assert "supports httpx 0.27.x or 0.28.x, found httpx 9.9.9" in message
    assert "-p no:httptrace" in message
    with pytest.raises(RuntimeError, match=r"found httpx 9\.9\.9"):
        Recorder.start()
    assert not _patches.installed()
    assert not trace.instrumentation_active() and trace._GLOBAL == ()


def test_hooks_set_after_construction_are_seen() -> None:
    trace = ClientTrace(got_conn=print)
    assert trace.names_set() == {"got_conn"}
    trace.wrote_headers = print
    request = TracedRequest(method="GET", url="https://x/", chain=(trace,))
    assert request.wanted == {"got_conn", "wrote_headers"}


def test_a_hook_assigned_after_a_request_reaches_the_next_request() -> None:
    # Requests dispatch by a plan cached per chain: assigning a hook must not be
    # hidden by a plan made before it.
    calls: list[str] = []
    trace = ClientTrace()
    with with_client_trace(trace):
        TracedRequest(method="GET", url="https://x/", chain=current_chain()).fire(
            "wrote_headers"
        )
        trace.wrote_headers = lambda: calls.append("second")
        request = TracedRequest(method="GET", url="https://x/", chain=current_chain())
        request.fire("wrote_headers")
    assert calls == ["second"]


def test_a_recorder_alone_and_beside_another_trace_records_the_same() -> None:
    # A recorder alone in a chain is handed the calls directly; beside a user's
    # trace it is reached through the chain: both record every call once.
    from pytest_httptrace.recorder import Recorder

    seen: list[str] = []
    with Recorder.start() as rec:
        alone = TracedRequest(method="GET", url="https://a/", chain=current_chain())
        alone.fire("get_conn", "a:443")
        alone.fire("wrote_headers")
        with with_client_trace(ClientTrace(wrote_headers=lambda: seen.append("u"))):
            mixed = TracedRequest(method="GET", url="https://b/", chain=current_chain())
            mixed.fire("get_conn", "b:443")
            mixed.fire("wrote_headers")
    assert [r.hooks for r in rec.requests] == [
        ["get_conn", "wrote_headers"],
        ["get_conn", "wrote_headers"],
    ]
    assert [r.url for r in rec.requests] == ["https://a/", "https://b/"]
    assert seen == ["u"]


def test_conn_closed_reaches_a_trace_whose_request_is_gone() -> None:
    import gc

    from pytest_httptrace.trace import ConnClosedInfo, TracedConnection

    heard: list[ConnClosedInfo] = []
    trace = ClientTrace(conn_closed=heard.append)
    conn = TracedConnection.of(object(), id=1)
    request = TracedRequest(method="GET", url="https://x/", chain=(trace,))
    conn.last_request = request
    del request
    gc.collect()
    assert conn.last_request is None  # held weakly
    conn.closed("server")
    conn.closed("client")  # a connection closes once
    assert [(i.reason, i.err) for i in heard] == [("server", None)]
    assert conn.close_reason == "server" and conn.closed_at is not None


def test_events_read_between_hook_calls_are_all_kept_in_order() -> None:
    # The recorder builds events from its raw entries when read, then drops the
    # entries: a read between hook calls loses and repeats nothing.
    from pytest_httptrace.recorder import Recorder

    with Recorder.start() as rec:
        request = TracedRequest(method="GET", url="https://a/", chain=current_chain())
        request.fire("get_conn", "a:443")
        request.fire_header_fields([(b"Host", b"a"), (b"Accept", b"*/*")])
        assert [e.hook for e in rec.events] == ["get_conn", *["wrote_header_field"] * 2]
        request.fire("wrote_headers")
        request.fire("got_first_response_byte")
    assert [e.index for e in rec.events] == [0, 1, 2, 3, 4]
    assert rec.requests[0].hooks == [
        "get_conn",
        "wrote_header_field",
        "wrote_header_field",
        "wrote_headers",
        "got_first_response_byte",
    ]
    assert [e.args for e in rec.requests[0].getcalls("wrote_header_field")] == [
        {"key": "Host", "values": ["a"]},
        {"key": "Accept", "values": ["*/*"]},
    ]


def test_a_recorder_reached_through_a_composed_trace_records_each_call_once() -> None:
    # Composed with a user's trace, the recorder is called through its hook
    # functions (it finds the request dispatching now); beside that, the same
    # dispatch also reaches it directly: recorded once, on the right request.
    from pytest_httptrace.recorder import Recorder

    seen: list[str] = []
    with Recorder.start() as rec:
        user = ClientTrace(wrote_headers=lambda: seen.append("user"))
        composed = compose(user, rec.trace)
        for chain in ((composed,), (composed, rec.trace)):
            request = TracedRequest(method="GET", url="https://c/", chain=chain)
            request.fire("wrote_headers")
            request.fire("wrote_request", None)
        rec.trace.got_100_continue()  # by hand, outside any request
    assert seen == ["user", "user"]
    assert [r.hooks for r in rec.requests] == [["wrote_headers", "wrote_request"]] * 2
    assert [(e.hook, e.request) for e in rec.events][-1] == ("got_100_continue", None)
