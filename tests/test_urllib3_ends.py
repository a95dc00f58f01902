"""How urllib3 and requests requests end (``body_closed``, ``request_done``) and why
their connections close (``conn_closed``), against the real servers: recorded
(``record.outcome``, ``record.ends``, ``ConnectionRecord.close_reason``) and heard
live by a user's trace."""

from __future__ import annotations

import gc
import http.client
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from http1_driver import CLIENTS, Driver

from pytest_httptrace import ClientTrace, Recorder, with_client_trace
from pytest_httptrace.raw_server import Close, ReadBody, ReadHead, Reset, Send, Sleep
from pytest_httptrace.recorder import ConnectionRecord, RequestRecord
from pytest_httptrace.trace import RequestAbortedByHook

OK = Send.response(200, "fine")


class Heard:
    """A user's trace of the three end hooks: what it heard, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.trace = ClientTrace(
            body_closed=lambda info: self.calls.append(("body_closed", info)),
            request_done=lambda info: self.calls.append(("request_done", info)),
            conn_closed=lambda info: self.calls.append(("conn_closed", info)),
        )

    def summary(self) -> list[tuple[str, object]]:
        """Each call with its telling field."""
        out: list[tuple[str, object]] = []
        for hook, info in self.calls:
            if hook == "body_closed":
                out.append((hook, info.read_to_end))
            elif hook == "request_done":
                out.append((hook, info.outcome))
            else:
                out.append((hook, info.reason))
        return out


def ends(request: RequestRecord) -> list[tuple[str, object]]:
    """The record's end events with their telling argument."""
    key = {
        "body_closed": "read_to_end",
        "request_done": "outcome",
        "conn_closed": "reason",
    }
    return [(e.hook, e.args[key[e.hook]]) for e in request.ends]


def conn_of(request: RequestRecord) -> ConnectionRecord:
    assert request.connection is not None
    return request.connection


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest, httptrace_server: Any) -> Any:
    with Driver(request.param, httptrace_server) as driver:
        yield driver


def get_twice(kind: str, raw: Any, **kw: Any) -> tuple[Any, Any]:
    """First GET (expected to fail), then a second GET on the same pool."""
    with Driver(kind, raw, **kw) as driver:
        try:
            first: Any = driver.get("/")
        except driver.error as exc:
            first = exc
        return first, driver.get("/")


# -- complete, closed early ----------------------------------------------------


def test_read_to_the_end_is_complete_and_kept(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    heard = Heard()
    with with_client_trace(heard.trace):
        assert client.get("/").body == b"hello"
    assert client.get("/").body == b"hello"
    first, second = httptrace_recorder.requests
    assert heard.summary() == [("body_closed", True), ("request_done", "complete")]
    assert first.outcome == "complete" and second.outcome == "complete"
    assert ends(first) == [("body_closed", True), ("request_done", "complete")]
    assert [e.hook for e in first.getcalls("request_done")] == ["request_done"]
    assert first.done_at is not None and first.closed_at is not None
    assert first.closed_at <= first.done_at
    assert conn_of(first).close_reason is None  # pooled, reused by the second
    assert conn_of(second) is conn_of(first)


def test_connection_close_from_the_server(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    heard = Heard()
    with with_client_trace(heard.trace):
        client.get("/close")
    client.get("/")
    closing, after = httptrace_recorder.requests
    assert heard.summary() == [
        ("body_closed", True),
        ("request_done", "complete"),
        ("conn_closed", "server"),
    ]
    assert heard.calls[-1][1].conn is closing.connection.conn  # type: ignore[union-attr]
    assert closing.outcome == "complete"
    assert conn_of(closing).close_reason == "server"
    assert conn_of(closing).close_error is None
    assert ends(closing)[-1] == ("conn_closed", "server")
    assert conn_of(after) is not conn_of(closing)


def test_conn_closed_goes_to_the_last_request_it_served(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    client.get("/")
    heard = Heard()
    with with_client_trace(heard.trace):
        client.get("/close")  # the same connection, reused
    first, last = httptrace_recorder.requests
    assert conn_of(first) is conn_of(last)
    assert [e.hook for e in first.ends] == ["body_closed", "request_done"]
    assert ends(last)[-1] == ("conn_closed", "server")
    assert heard.summary()[-1] == ("conn_closed", "server")


def test_stream_closed_before_the_end(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    heard = Heard()
    with with_client_trace(heard.trace):
        streamed = client.stream("/bytes/100000")
        client.close_stream(streamed)  # requests' r.close(); urllib3's close()
    client.get("/")
    early, after = httptrace_recorder.requests
    assert heard.summary() == [
        ("body_closed", False),
        ("request_done", "closed_early"),
        ("conn_closed", "client"),
    ]
    assert early.outcome == "closed_early"
    assert early.getcall("body_closed").args == {"read_to_end": False, "err": None}
    assert conn_of(early).close_reason == "client"
    assert conn_of(after) is not conn_of(early)


def test_stream_read_to_the_end_then_closed(
    client: Driver, httptrace_recorder: Recorder
) -> None:
    streamed = client.stream("/bytes/100000")
    assert len(client.read_stream(streamed)) == 100000
    client.close_stream(streamed)
    client.get("/")
    streamed_record, after = httptrace_recorder.requests
    assert streamed_record.outcome == "complete"
    assert conn_of(streamed_record).close_reason is None
    assert conn_of(after) is conn_of(streamed_record)


def test_released_unread_then_dropped_is_the_clients(
    httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    """``release_conn()`` before the end pools the connection with the body still
    to come: when it is in, the next checkout finds the socket readable and closes
    it (``is_connection_dropped``). The client is why, not the server, and the
    released request ended early."""
    raw = httptrace_raw_http_server
    head = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    raw.script([ReadHead(), head, Sleep(0.05), Send(b"0123456789")], [ReadHead(), OK])
    with Driver("urllib3", raw) as driver:
        streamed = driver.stream("/")
        streamed.release_conn()
        (released,) = httptrace_recorder.requests
        assert released.outcome == "closed_early"
        assert conn_of(released).close_reason is None  # in the pool, for now
        raw.wait(1)  # the body is in the socket
        driver.wait_until_idle_dropped()
        assert driver.get("/").body == b"fine"
        streamed.close()
    released, after = httptrace_recorder.requests
    assert conn_of(released).close_reason == "client"
    closed_at = conn_of(released).closed_at
    assert closed_at is not None  # at the checkout, before the new dial:
    assert after.getcall("get_conn").time <= closed_at
    assert closed_at <= after.getcall("connect_start").time
    assert "connect_start" in after.hooks and after.outcome == "complete"


def test_released_unread_and_reused_is_the_clients(
    httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    """The whole response came in one segment, so http.client's buffer holds the
    unread body and the socket looks idle: urllib3 reuses the connection, http.client
    refuses it (``ResponseNotReady``: the last response is still open), urllib3
    closes it and retries on a new one. The client is why."""
    raw = httptrace_raw_http_server
    whole = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
    raw.script([ReadHead(), whole], [ReadHead(), OK])
    with Driver("urllib3", raw, retries=urllib3.Retry(1)) as driver:
        streamed = driver.stream("/")
        raw.wait(1)
        streamed.release_conn()  # unread
        assert driver.get("/").body == b"fine"
        streamed.close()
    released, refused, after = httptrace_recorder.requests
    assert released.outcome == "closed_early"
    assert conn_of(refused) is conn_of(released)
    assert refused.outcome == "failed"
    assert isinstance(conn_of(released).close_error, http.client.ResponseNotReady)
    assert conn_of(released).close_reason == "client"
    assert after.outcome == "complete" and conn_of(after) is not conn_of(released)


def test_drain_conn_reads_to_the_end(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """``drain_conn()`` reads the rest of the body off the wire and releases the
    connection, which is reused: the body was read to its end."""
    with Driver("urllib3", httptrace_server) as driver:
        streamed = driver.stream("/bytes/100000")
        streamed.drain_conn()
        driver.get("/")
    drained, after = httptrace_recorder.requests
    assert drained.outcome == "complete"
    assert "put_idle_conn" in drained.hooks
    assert conn_of(after) is conn_of(drained)


def test_every_redirect_hop_ends(client: Driver, httptrace_recorder: Recorder) -> None:
    heard = Heard()
    with with_client_trace(heard.trace):
        if client.kind == "requests":
            assert client.get("/redirect/2").body == b"hello"
        else:  # urllib3 follows them inside urlopen, preloading each body
            url = client.url("/redirect/2")
            assert client.pool.request("GET", url, retries=3).data == b"hello"
    hops = httptrace_recorder.requests
    assert len(hops) == 3
    assert [r.outcome for r in hops] == ["complete"] * 3
    assert [s for s in heard.summary() if s[0] == "request_done"] == [
        ("request_done", "complete")
    ] * 3
    assert len({conn_of(r).id for r in hops}) == 1


def test_redirect_hops_urllib3_drains_itself(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """With ``preload_content=False`` urllib3 drains each hop's body and releases
    it itself: the hops are complete, the final response is still open."""
    with Driver("urllib3", httptrace_server, retries=urllib3.Retry(3)) as driver:
        response = driver.stream("/redirect/2")
        first, second, last = httptrace_recorder.requests
        assert [first.outcome, second.outcome, last.outcome] == [
            "complete",
            "complete",
            None,
        ]
        assert driver.read_stream(response) == b"hello"
    assert last.outcome == "complete"


# -- the pool: full, closed ------------------------------------------------------


def test_pool_full_discards(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    heard = Heard()
    with Driver("urllib3", httptrace_server, maxsize=1) as driver:
        a = driver.stream("/bytes/10")
        with with_client_trace(heard.trace):
            b = driver.stream("/bytes/10")  # the pool is empty: a second connection
        assert driver.read_stream(a) == b"0123456789"  # a's connection fills the pool
        driver.read_stream(b)  # so b's is discarded
        first, second = httptrace_recorder.requests
        assert [first.outcome, second.outcome] == ["complete", "complete"]
        assert conn_of(second).close_reason == "pool_full"
        assert conn_of(first).close_reason is None
    assert heard.summary() == [
        ("body_closed", True),
        ("request_done", "complete"),
        ("conn_closed", "pool_full"),
    ]
    assert conn_of(first).close_reason == "client_closed"  # Driver closed the pool


@pytest.mark.parametrize("how", ["pool.close", "manager.clear", "session.close"])
def test_closing_the_client_closes_its_idle_connections(
    how: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    heard = Heard()
    kind = "requests" if how == "session.close" else "urllib3"
    with Driver(kind, httptrace_server) as driver:
        with with_client_trace(heard.trace):
            driver.get("/")
        (request,) = httptrace_recorder.requests
        assert conn_of(request).close_reason is None
        if how == "pool.close":
            for key in list(driver.pool.pools.keys()):
                driver.pool.pools[key].close()
        elif how == "manager.clear":
            driver.pool.clear()  # the pools' finalizers close their connections
            gc.collect()
        else:
            driver.session.close()
            gc.collect()
        assert conn_of(request).close_reason == "client_closed"
    assert heard.summary()[-1] == ("conn_closed", "client_closed")
    assert ends(request)[-1] == ("conn_closed", "client_closed")


def test_returned_to_a_closed_pool(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with Driver("urllib3", httptrace_server) as driver:
        response = driver.stream("/bytes/10")
        for key in list(driver.pool.pools.keys()):
            driver.pool.pools[key].close()
        assert response.read() == b"0123456789"  # read to its end: released
    (request,) = httptrace_recorder.requests
    assert request.outcome == "complete"
    assert conn_of(request).close_reason == "client_closed"


# -- failures ------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
def test_reset_from_the_server_is_a_protocol_error(
    kind: str, httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    """Over plain TCP the RST reaches http.client as ECONNRESET. (Over TLS, Python's
    ssl module reports it as the end of the stream: ``RemoteDisconnected``.)"""
    raw = httptrace_raw_http_server
    raw.script([ReadHead(), Reset()], [ReadHead(), OK])
    heard = Heard()
    with with_client_trace(heard.trace):
        get_twice(kind, raw)
    failed, after = httptrace_recorder.requests
    assert failed.outcome == "failed" and after.outcome == "complete"
    done = failed.getcall("request_done").args
    assert isinstance(done["err"], ConnectionResetError)
    assert "body_closed" not in [e.hook for e in failed.ends]  # no response
    assert conn_of(failed).close_reason == "protocol_error"
    assert isinstance(conn_of(failed).close_error, ConnectionResetError)
    assert heard.summary()[:2] == [
        ("request_done", "failed"),
        ("conn_closed", "protocol_error"),
    ]


@pytest.mark.parametrize("kind", CLIENTS)
def test_closed_before_the_response_is_the_servers(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), Close()], [ReadHead(), OK])
    get_twice(kind, raw)
    failed, _ = httptrace_recorder.requests
    assert failed.outcome == "failed"
    assert conn_of(failed).close_reason == "server"
    assert isinstance(conn_of(failed).close_error, http.client.RemoteDisconnected)


@pytest.mark.parametrize("kind", CLIENTS)
def test_truncated_body_fails_while_reading(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    """requests reads the body after urlopen returned (urllib3 closes the
    connection as the error passes); urllib3 preloads it inside urlopen."""
    raw = httptrace_raw_server
    partial = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    raw.script([ReadHead(), partial, Close()], [ReadHead(), OK])
    heard = Heard()
    with with_client_trace(heard.trace):
        get_twice(kind, raw)
    truncated, after = httptrace_recorder.requests
    assert truncated.outcome == "failed" and after.outcome == "complete"
    closed = truncated.getcall("body_closed").args
    assert closed["read_to_end"] is False
    assert closed["err"] is not None and "IncompleteRead" in repr(closed["err"])
    assert conn_of(truncated).close_reason == "protocol_error"
    assert conn_of(truncated).close_error is closed["err"]
    assert heard.summary()[:3] == [
        ("body_closed", False),
        ("request_done", "failed"),
        ("conn_closed", "protocol_error"),
    ]


@pytest.mark.parametrize("kind", CLIENTS)
def test_read_timeout(
    kind: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with Driver(kind, httptrace_server) as driver, pytest.raises(driver.error):
        if kind == "requests":
            driver.session.get(driver.url("/delay/2"), timeout=0.2)
        else:
            driver.pool.request("GET", driver.url("/delay/2"), timeout=0.2)
    (timed_out,) = httptrace_recorder.requests
    assert timed_out.outcome == "failed"
    err = timed_out.getcall("request_done").args["err"]
    assert isinstance(err, TimeoutError)
    # The client gave up waiting (aiohttp's sock_read timeout reads the same).
    assert conn_of(timed_out).close_reason == "client"
    assert conn_of(timed_out).close_error is err


@pytest.mark.parametrize("kind", CLIENTS)
def test_read_timeout_in_the_body(
    kind: str, httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    """The head arrives, the body does not: the read times out while the body is
    read (urllib3 preloads it inside urlopen; requests reads it after urlopen
    returned, and urllib3 closes the connection as the error passes)."""
    raw = httptrace_raw_http_server
    head = Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    raw.script([ReadHead(), head, Sleep(1.0), Send(b"0123456789")])
    with Driver(kind, raw) as driver, pytest.raises(driver.error):
        if kind == "requests":
            driver.session.get(driver.url("/"), timeout=0.2)
        else:
            driver.pool.request("GET", driver.url("/"), timeout=0.2)
    (timed_out,) = httptrace_recorder.requests
    assert timed_out.status == 200 and timed_out.outcome == "failed"
    closed = timed_out.getcall("body_closed").args
    assert closed["read_to_end"] is False
    assert isinstance(closed["err"], urllib3.exceptions.ReadTimeoutError)
    assert conn_of(timed_out).close_reason == "client"
    assert conn_of(timed_out).close_error is closed["err"]


def test_pool_full_through_requests(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    with Driver("requests", httptrace_server) as driver:
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=1)
        driver.session.mount("https://", adapter)
        a = driver.stream("/bytes/10")
        b = driver.stream("/bytes/10")  # a second connection
        assert driver.read_stream(a) == b"0123456789"
        assert driver.read_stream(b) == b"0123456789"  # the pool is full
        first, second = httptrace_recorder.requests
        assert [first.outcome, second.outcome] == ["complete", "complete"]
        assert conn_of(second).close_reason == "pool_full"
        adapter.close()


def test_each_failed_retry_attempt_ends(
    httptrace_raw_http_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_http_server
    raw.script([ReadHead(), Reset()], [ReadHead(), Reset()], [ReadHead(), OK])
    with Driver("urllib3", raw, retries=urllib3.Retry(2, backoff_factor=0)) as driver:
        assert driver.get("/").body == b"fine"
    first, second, third = httptrace_recorder.requests
    assert [first.outcome, second.outcome, third.outcome] == [
        "failed",
        "failed",
        "complete",
    ]
    assert [conn_of(r).close_reason for r in (first, second)] == ["protocol_error"] * 2


def test_stale_keep_alive_found_at_checkout_is_the_servers(
    httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    for kind in CLIENTS:
        httptrace_recorder.clear()
        raw.script([ReadHead(), OK, Close()], [ReadHead(), Send.response(200, "again")])
        with Driver(kind, raw) as driver:
            heard = Heard()
            with with_client_trace(heard.trace):
                assert driver.get("/").body == b"fine"
            raw.wait(1)
            driver.wait_until_idle_dropped()
            assert driver.get("/").body == b"again"
        first, second = httptrace_recorder.requests
        assert first.outcome == "complete"
        assert conn_of(first).close_reason == "server", kind
        # Heard by the trace of the request it last served, when urllib3 found out.
        assert heard.summary()[-1] == ("conn_closed", "server")
        closed_at = conn_of(first).closed_at
        assert closed_at is not None
        assert second.getcall("get_conn").time <= closed_at
        assert closed_at <= second.getcall("connect_start").time


@pytest.mark.parametrize("kind", CLIENTS)
def test_hook_abort_fails_and_the_client_closes(
    kind: str, httptrace_raw_server: Any, httptrace_recorder: Recorder
) -> None:
    raw = httptrace_raw_server
    raw.script([ReadHead(), ReadBody(), Send.interim(100), OK])

    def refuse(code: int, headers: Any) -> None:
        raise ValueError("no interim responses, please")

    with (
        Driver(kind, raw) as driver,
        with_client_trace(ClientTrace(got_1xx_response=refuse)),
        pytest.raises(RequestAbortedByHook),
    ):
        driver.request("POST", "/", body=b"x", headers={"Expect": "100-continue"})
    (aborted,) = httptrace_recorder.requests
    assert aborted.outcome == "failed"
    assert isinstance(aborted.getcall("request_done").args["err"], RequestAbortedByHook)
    assert conn_of(aborted).close_reason == "client"


def test_no_connection_at_all_fails(
    httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """block=True, the only connection held by a stream: urllib3 raises
    EmptyPoolError before the request has any connection."""
    with Driver("urllib3", httptrace_server, maxsize=1, block=True) as driver:
        held = driver.stream("/bytes/10")
        with pytest.raises(urllib3.exceptions.EmptyPoolError):
            driver.pool.request("GET", driver.url("/"), pool_timeout=0.01)
        driver.read_stream(held)
    _, starved = httptrace_recorder.requests
    assert starved.connection is None
    assert starved.outcome == "failed"
    assert isinstance(
        starved.getcall("request_done").args["err"], urllib3.exceptions.EmptyPoolError
    )


@pytest.mark.parametrize("kind", CLIENTS)
def test_failed_handshake_closes_for_a_protocol_error(
    kind: str, httptrace_server: Any, httptrace_recorder: Recorder
) -> None:
    """The connection never got to serve the request (no got_conn): the request
    that dialed it hears it close."""
    heard = Heard()
    with (
        Driver(kind, httptrace_server, trusted=False) as driver,
        with_client_trace(heard.trace),
        pytest.raises(driver.error),
    ):
        driver.get("/")
    (refused,) = httptrace_recorder.requests
    assert refused.got_conn is None and refused.outcome == "failed"
    assert conn_of(refused).close_reason == "protocol_error"
    assert "CERTIFICATE_VERIFY_FAILED" in repr(conn_of(refused).close_error)
    assert heard.summary() == [
        ("request_done", "failed"),
        ("conn_closed", "protocol_error"),
    ]


def test_connection_refused_fails(httptrace_recorder: Recorder) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for kind in CLIENTS:
        httptrace_recorder.clear()
        session = requests.Session() if kind == "requests" else None
        try:
            if session is not None:
                with pytest.raises(requests.ConnectionError):
                    session.get(f"http://127.0.0.1:{port}/")
            else:
                with pytest.raises(urllib3.exceptions.HTTPError):
                    urllib3.PoolManager(retries=False).request(
                        "GET", f"http://127.0.0.1:{port}/"
                    )
        finally:
            if session is not None:
                session.close()
        (refused,) = httptrace_recorder.requests
        assert refused.outcome == "failed" and refused.connection is None
        err = refused.getcall("request_done").args["err"]
        assert isinstance(err, ConnectionRefusedError) or isinstance(
            err.__cause__ or err.__context__, ConnectionRefusedError
        ), repr(err)


@pytest.mark.httptrace(leaks="off")  # the stream is left open on purpose
def test_leak_has_no_end(client: Driver, httptrace_recorder: Recorder) -> None:
    """A response nobody closes has no request_done; the garbage collector closes
    its connection (the client's doing)."""
    streamed = client.stream("/bytes/100000")
    (leaked,) = httptrace_recorder.requests
    assert leaked.outcome is None and leaked.ends == []
    del streamed
    gc.collect()
    assert leaked.outcome is None
    assert conn_of(leaked).close_reason == "client"


def test_the_docs_example_passes(pytester: pytest.Pytester) -> None:
    page = (Path(__file__).parents[1] / "docs" / "urllib3.md").read_text()
    example = page.split("<!-- ends-example -->\n```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(example)
    result = pytester.runpytest("-p", "httptrace", "-W", "error")
    result.assert_outcomes(passed=1)
