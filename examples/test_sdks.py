"""The openai and anthropic SDKs on their default httpx2 clients, recorded
(docs/sdks.md).

The SDKs talk to `httptrace_server` through custom routes that answer like the real
APIs (a JSON response and a streamed SSE response). Nothing is injected into the
SDK but the CA to trust: its own ``DefaultHttpxClient`` (an ``httpx2.Client``) does
the requests, and ``httptrace_recorder`` records them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from pytest_httptrace import (
    Recorder,
    assert_connections_opened,
    assert_hook_sequence,
    assert_reused,
    hook,
)

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-test",
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


def _chunk(text: str | None) -> dict[str, Any]:
    delta = {"content": text} if text is not None else {}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": None if text is not None else "stop",
            }
        ],
    }


def _anthropic_events() -> list[tuple[str, dict[str, Any]]]:
    start = {**MESSAGE, "content": [], "stop_reason": None}
    text = {"type": "text_delta", "text": "hello"}
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": text},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def api(document: dict[str, Any], sse: list[bytes]) -> ASGI:
    """An ASGI route: JSON ``document``, or the ``sse`` events when the request
    body asks for ``"stream": true`` (as both APIs do)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if json.loads(body or b"{}").get("stream"):
            headers = [(b"content-type", b"text/event-stream")]
            start = {"type": "http.response.start", "status": 200, "headers": headers}
            await send(start)
            *events, last = sse  # the last event ends the body (one write)
            for event in events:
                chunk = {"type": "http.response.body", "body": event, "more_body": True}
                await send(chunk)
            await send({"type": "http.response.body", "body": last})
            return
        payload = json.dumps(document).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


@pytest.fixture
def openai_client(httptrace_server: Any) -> Iterator[Any]:
    sse = [f"data: {json.dumps(_chunk(t))}\n\n".encode() for t in ("hel", "lo", None)]
    sse.append(b"data: [DONE]\n\n")
    httptrace_server.add_route("/v1/chat/completions", api(CHAT, sse))
    client = openai.OpenAI(
        base_url=httptrace_server.url("/v1"),
        api_key="test-key",
        http_client=openai.DefaultHttpxClient(verify=httptrace_server.ssl_context()),
    )
    with client:
        yield client


@pytest.fixture
def anthropic_client(httptrace_server: Any) -> Iterator[Any]:
    sse = [
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        for name, data in _anthropic_events()
    ]
    httptrace_server.add_route("/v1/messages", api(MESSAGE, sse))
    client = anthropic.Anthropic(
        base_url=httptrace_server.url(""),
        api_key="test-key",
        http_client=anthropic.DefaultHttpxClient(verify=httptrace_server.ssl_context()),
    )
    with client:
        yield client


MESSAGES = [{"role": "user", "content": "hi"}]


def test_openai_calls_share_one_connection(
    openai_client: Any, httptrace_recorder: Recorder, httptrace_server: Any
) -> None:
    first = openai_client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    stream = openai_client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True
    )
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert (first.choices[0].message.content, text) == ("hello", "hello")

    plain, streamed = httptrace_recorder.requests
    assert plain.source is not None and plain.source.library == "httpx2"
    assert plain.via == ("openai",)  # made at this file, through the SDK
    assert plain.origin is not None and plain.origin.startswith(__file__)
    assert_hook_sequence(
        plain,
        ["get_conn", ..., "tls_handshake_done", "got_conn", ..., "put_idle_conn"],
    )
    assert_reused(streamed)  # the SDK keeps one client and its pool
    assert_connections_opened(httptrace_recorder, 1)
    assert len(httptrace_server.log.connections) == 1


def test_openai_sync_stream_does_not_return_its_connection(
    openai_client: Any, httptrace_recorder: Recorder, httptrace_server: Any
) -> None:
    """What the lifecycle reveals (openai 3.5x): the sync ``Stream`` stops at
    ``[DONE]`` and closes the response before httpcore read the body's end, so the
    connection is closed, not pooled, and the next call pays a new TLS handshake.
    The server sent the whole body in one write: nothing was left to wait for."""
    stream = openai_client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True
    )
    with stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "hello"
    openai_client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    streamed, after = httptrace_recorder.requests
    assert streamed.closed_at is not None and "put_idle_conn" not in streamed.hooks
    assert_hook_sequence(
        after, ["get_conn", ..., "tls_handshake_done", "got_conn", ...]
    )
    assert after.got_conn is not None and not after.got_conn.reused
    assert len(httptrace_server.log.connections) == 2


def test_anthropic_message_and_stream_are_recorded(
    anthropic_client: Any, httptrace_recorder: Recorder
) -> None:
    message = anthropic_client.messages.create(
        model="claude-test", max_tokens=10, messages=MESSAGES
    )
    with anthropic_client.messages.stream(
        model="claude-test", max_tokens=10, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
    assert (message.content[0].text, text) == ("hello", "hello")

    plain, streamed = httptrace_recorder.requests
    assert plain.via == ("anthropic",)
    assert_hook_sequence(
        plain,
        [
            "get_conn",
            ...,
            hook("wrote_header_field", key="anthropic-version"),
            ...,
            "put_idle_conn",
        ],
    )
    assert_reused(streamed)


def test_a_stream_left_open_keeps_its_connection(
    openai_client: Any, httptrace_recorder: Recorder
) -> None:
    """The bug an SDK user makes: a stream iterated halfway and never closed holds
    its connection, so the next call dials a new one."""
    stream = openai_client.chat.completions.create(
        model="gpt-test", messages=MESSAGES, stream=True
    )
    next(iter(stream))  # read one chunk, then move on without closing
    openai_client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    stream.close()
    held, after = httptrace_recorder.requests
    assert after.got_conn is not None and not after.got_conn.reused
    assert after.connection is not held.connection
