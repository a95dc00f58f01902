"""The cookbook (docs/cookbook.md) as tests: each bug of `NaiveItemsClient` is caught.

Every test runs the same scenario twice: `ItemsClient` passes the lifecycle
assertion; `NaiveItemsClient`, whose responses are just as correct, fails it. In your
own suite you would only write the first half; the second half is here to show that
each assertion really catches its bug.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from toy_client import ItemsClient, NaiveItemsClient

from pytest_httptrace import (
    Recorder,
    assert_connections_opened,
    assert_hook_order,
    assert_hook_sequence,
    assert_no_leaks,
    assert_reused,
    hook,
    wait_for_100_continue,
)

MakeClient = Callable[[type[ItemsClient]], ItemsClient]


@pytest.fixture
def make_client(httptrace_server: Any) -> Iterator[MakeClient]:
    """Build clients of either class against the test server; close them after."""
    clients: list[ItemsClient] = []

    def make(cls: type[ItemsClient]) -> ItemsClient:
        client = cls(httptrace_server.url(""), verify=httptrace_server.ssl_context())
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- 1. a client built per request ---------------------------------------------------


def test_one_client_for_many_requests(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    items = make_client(ItemsClient)
    for _ in range(3):
        assert items.get_item("/") == "hello"
    assert_connections_opened(httptrace_recorder, 1)


def test_client_built_per_request_is_caught(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    items = make_client(NaiveItemsClient)
    for _ in range(3):
        assert items.get_item("/") == "hello"  # the responses are fine...
    with pytest.raises(
        AssertionError, match="expected exactly 1 connection to be opened, 3 were"
    ):
        assert_connections_opened(httptrace_recorder, 1)  # ...the lifecycle is not


# -- 2. a streamed response that is never closed -------------------------------------


def test_streamed_response_is_closed(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    items = make_client(ItemsClient)
    assert items.content_length("/bytes/1000") == 1000
    assert_no_leaks(httptrace_recorder)


# The plugin's own leak check (default: warn) would report this test at teardown,
# which is what you want in your suite; here the test asserts the leak itself.
@pytest.mark.httptrace(leaks="off")
def test_unclosed_stream_is_caught(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    items = make_client(NaiveItemsClient)
    assert items.content_length("/bytes/1000") == 1000
    with pytest.raises(AssertionError, match="1 response was never closed"):
        assert_no_leaks(httptrace_recorder)


# -- 3. a retry that handshakes again ------------------------------------------------


def flaky(failures: int) -> Any:
    """An ASGI route answering 503 ``failures`` times, then 200."""
    calls = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        status = 503 if calls <= failures else 200
        headers = [(b"content-length", b"2"), (b"content-type", b"text/plain")]
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_retry_reuses_the_connection(
    make_client: MakeClient, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    httptrace_server.add_route("/flaky", flaky(failures=1))
    items = make_client(ItemsClient)
    assert items.get_with_retry("/flaky").status_code == 200
    first, retry = httptrace_recorder.requests
    assert first.status == 503
    assert_reused(retry)


def test_retry_that_rehandshakes_is_caught(
    make_client: MakeClient, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    httptrace_server.add_route("/flaky", flaky(failures=1))
    items = make_client(NaiveItemsClient)
    assert items.get_with_retry("/flaky").status_code == 200
    _, retry = httptrace_recorder.requests
    with pytest.raises(AssertionError, match="got a new connection"):
        assert_reused(retry)
    # The same bug, said with the hooks: the retry went through DNS, connect and TLS.
    assert_hook_sequence(
        retry, ["get_conn", "dns_start", ..., "tls_handshake_done", ...]
    )


# -- 4. an upload that counts on 100-continue ----------------------------------------


def test_upload_sends_its_body_at_once_with_stock_httpx(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    items = make_client(NaiveItemsClient)
    assert items.upload("/echo", b"x" * 100_000).status_code == 200
    (upload,) = httptrace_recorder.requests
    # The whole body was written before the server said anything, 100 Continue or
    # not: the Expect header saved nothing.
    assert_hook_order(upload, "wrote_request", upload, "got_100_continue")
    with pytest.raises(AssertionError, match="wait_100_continue"):
        assert_hook_sequence(upload, [..., "wrote_headers", "wait_100_continue", ...])


def test_upload_waits_in_the_opt_in_mode(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    # The opt-in mode makes httpx behave like Go's client (it changes the wire
    # behaviour): use it to test how a *server* handles Expect: 100-continue. The
    # marker @pytest.mark.httptrace(wait_for_100_continue=True) does the same for a
    # whole test.
    items = make_client(NaiveItemsClient)
    with wait_for_100_continue(timeout=1.0):
        assert items.upload("/echo", b"x" * 100_000).status_code == 200
    (upload,) = httptrace_recorder.requests
    assert_hook_sequence(
        upload,
        [..., "wrote_headers", "wait_100_continue", ..., "got_100_continue", ...],
    )
    assert_hook_order(upload, "got_100_continue", upload, "wrote_request")


# -- 5. HTTP/2 not negotiated --------------------------------------------------------

# What ALPN chose is in tls_handshake_done's state. (To see the consequence, that
# concurrent requests do not share a connection, use assert_shared_connection with
# an AsyncClient: httpcore's sync HTTP/2 connection is not safe to share between
# threads: see https://github.com/pydantic/httpx2/pull/1153, the fix in the fork.)
H2 = hook("tls_handshake_done", state=lambda state: state.negotiated_protocol == "h2")


def test_http2_is_negotiated(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    assert make_client(ItemsClient).get_item("/") == "hello"
    (request,) = httptrace_recorder.requests
    assert_hook_sequence(request, [..., H2, ...])
    assert request.connection is not None
    assert request.connection.protocol == "HTTP/2"


def test_http2_not_negotiated_is_caught(
    make_client: MakeClient, httptrace_recorder: Recorder
) -> None:
    assert make_client(NaiveItemsClient).get_item("/") == "hello"
    (request,) = httptrace_recorder.requests
    with pytest.raises(
        AssertionError, match=r"<lambda>\(<TLS\S+ http/1.1>\) returned False"
    ):
        assert_hook_sequence(request, [..., H2, ...])
