"""1xx interim responses over HTTP/2 (hypercorn's early hints) and stock httpx with
``Expect: 100-continue`` over HTTP/1.1 (hypercorn sends ``100 Continue`` itself)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from pytest_httptrace import (
    ClientTrace,
    Recorder,
    RequestAbortedByHook,
    with_client_trace,
)

#: Every test runs on httpx and on httpx2 (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("httpx_lib")


def _visible(hooks: list[str]) -> list[str]:
    return [h for h in hooks if h != "wrote_header_field"]


def _get(mode: str, server: Any, path: str, **kw: Any) -> httpx.Response:
    if mode == "sync":
        with server.client(http2=True) as client:
            return client.get(server.url(path), **kw)  # type: ignore[no-any-return]

    async def main() -> httpx.Response:
        async with server.async_client(http2=True) as client:
            return await client.get(server.url(path), **kw)

    return asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_early_hints_over_http2(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    response = _get(mode, httptrace_server, "/early-hints")
    assert response.status_code == 200
    (request,) = httptrace_recorder.requests
    assert _visible(request.hooks)[-5:] == [
        "got_conn",
        "wrote_headers",
        "wrote_request",
        "got_first_response_byte",
        "got_1xx_response",
    ]
    hint = request.getcall("got_1xx_response")
    assert hint.args["code"] == 103
    assert isinstance(hint.args["headers"], httpx.Headers)
    assert "link" in hint.args["headers"]
    assert "got_100_continue" not in request.hooks
    assert request.status == 200


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_raising_1xx_hook_aborts_the_http2_stream_only(
    mode: str, httptrace_server: Any
) -> None:
    def refuse(code: int, headers: httpx.Headers) -> None:
        raise PermissionError(f"no {code} please")

    trace = ClientTrace(got_1xx_response=refuse)
    hints, plain = httptrace_server.url("/early-hints"), httptrace_server.url("/")
    if mode == "sync":
        with httptrace_server.client(http2=True) as client:
            client.get(plain)
            with with_client_trace(trace), pytest.raises(RequestAbortedByHook) as info:
                client.get(hints)
            assert client.get(plain).status_code == 200  # the connection goes on
    else:

        async def main() -> Any:
            async with httptrace_server.async_client(http2=True) as client:
                await client.get(plain)
                with with_client_trace(trace), pytest.raises(RequestAbortedByHook) as i:
                    await client.get(hints)
                assert (await client.get(plain)).status_code == 200
                return i

        info = asyncio.run(main())
    assert isinstance(info.value, httpx.TransportError)
    assert isinstance(info.value.__cause__, PermissionError)
    assert "got_1xx_response hook raised PermissionError('no 103 please')" in str(
        info.value
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stock_httpx_does_not_wait_for_100_continue(
    mode: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    body = b"x" * 100_000
    headers = {"Expect": "100-continue"}
    url = httptrace_server.url("/echo")
    if mode == "sync":
        with httptrace_server.client() as client:
            response = client.post(url, content=body, headers=headers)
    else:

        async def main() -> httpx.Response:
            async with httptrace_server.async_client() as client:
                return await client.post(url, content=body, headers=headers)

        response = asyncio.run(main())
    assert response.status_code == 200
    (request,) = httptrace_recorder.requests
    hooks = _visible(request.hooks)
    assert "wait_100_continue" not in hooks
    # The truth about stock httpx: the body went out at once, before any 100.
    if "got_100_continue" in hooks:
        assert hooks.index("wrote_request") < hooks.index("got_100_continue")
        assert hooks.count("got_100_continue") == 1
    assert request.getcall("wrote_request").args == {"err": None}
