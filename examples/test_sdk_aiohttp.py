"""The cookbook's SDK recipe (docs/cookbook.md, "An SDK on aiohttp"): openai's
``DefaultAioHttpClient`` (an httpx2 client over an aiohttp transport) is recorded
once per request, with the hooks of aiohttp, which did the I/O."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pytest_httptrace import Recorder, assert_connections_opened, assert_reused
from pytest_httptrace.server import Response

openai = pytest.importorskip("openai")
pytest.importorskip("aiohttp")

MODELS = {
    "object": "list",
    "data": [{"id": "m1", "object": "model", "created": 0, "owned_by": "us"}],
}


def test_an_sdk_on_aiohttp_is_recorded_once(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    httptrace_server.add_route(
        "/v1/models",
        Response(200, {"Content-Type": "application/json"}, json.dumps(MODELS)),
    )

    async def main() -> list[str]:
        http_client = openai.DefaultAioHttpClient(verify=httptrace_server.ssl_context())
        async with openai.AsyncOpenAI(
            base_url=httptrace_server.url("/v1"),
            api_key="test",
            http_client=http_client,
            max_retries=0,
        ) as client:
            first = await client.models.list()
            second = await client.models.list()
        await asyncio.sleep(0.05)  # closed TLS transports finish closing
        return [m.id for m in (*first.data, *second.data)]

    assert asyncio.run(main()) == ["m1", "m1"]

    # Two calls, two requests: one record each, not one per layer.
    first, second = httptrace_recorder.requests
    assert [r.url for r in (first, second)] == [httptrace_server.url("/v1/models")] * 2
    assert first.source is not None and first.source.library == "aiohttp"
    assert first.made_at is not None and "(via openai, httpx2)" in first.made_at
    assert first.hooks[:3] == ["get_conn", "dns_start", "dns_done"]
    keys = [e.args["key"].lower() for e in first.getcalls("wrote_header_field")]
    assert "authorization" in keys and "x-stainless-lang" in keys
    assert_reused(second)
    assert_connections_opened(httptrace_recorder, 1)
    assert len(httptrace_server.log.requests) == 2
