"""Writing the request: ``wrote_header_field``, ``wrote_headers``,
``wait_100_continue``, ``wrote_request``.

Written for aiohttp 3.14 ``http_writer.StreamWriter``: ``write_headers`` serializes
the head into a buffer (Go's ``WroteHeaders`` too comes once the head is in the
connection's write buffer); the buffer goes out with the first body chunk, with
``set_eof`` (no body) or ``send_headers`` (``Expect: 100-continue``: the head is
flushed and ``ClientRequest.write_bytes`` awaits the ``100 Continue`` before the
body). ``write_eof`` ends a body; a body that fails is handed to the protocol as
its error by ``write_bytes``, which returns normally then. The writer belongs to
the connection's protocol (``writer._protocol``), which says which request writes.
aiohttp's ``on_request_headers_sent`` signal fires before the head is serialized and
only for sessions built with a TraceConfig; nothing signals the end of the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..trace import TracedRequest, WroteRequestInfo
from ._core import _ACTIVE, _BY_REQUEST, _READING, _canceled


def _wrote_request(st: TracedRequest, err: BaseException | None) -> None:
    if not st.state.wrote_request:
        st.state.wrote_request = True
        st.fire("wrote_request", WroteRequestInfo(err=err))


def _writer_request(writer: Any) -> TracedRequest | None:
    return _ACTIVE.get(writer._protocol)


def _wrap_write_headers(orig: Callable[..., Any]) -> Callable[..., Any]:
    def write_headers(self: Any, status_line: str, headers: Any) -> Any:
        st = _writer_request(self)
        if st is None:
            return orig(self, status_line, headers)
        return traced(st, self, status_line, headers)

    async def traced(
        st: TracedRequest, self: Any, status_line: str, headers: Any
    ) -> None:
        try:
            await orig(self, status_line, headers)
        except BaseException as exc:
            _wrote_request(st, exc)  # e.g. a header value with a line break
            raise
        if "wrote_header_field" in st.wanted:
            # The order aiohttp serializes them in: the order on the wire (copied:
            # the request's headers are aiohttp's to change later).
            st.fire_header_fields(list(headers.items()))
        expect = headers.get("Expect")
        st.state.expect_continue = (
            expect is not None and expect.lower() == "100-continue"
        )
        st.fire("wrote_headers")
        _READING[self._protocol] = st

    return write_headers


def _wrap_send_headers(orig: Callable[..., Any]) -> Callable[..., Any]:
    def send_headers(self: Any) -> None:
        orig(self)
        st = _writer_request(self)
        if st is not None and st.state.expect_continue and not st.state.got_100:
            # write_bytes flushed the head and now awaits 100 Continue: aiohttp
            # really holds the body back.
            st.fire("wait_100_continue")

    return send_headers


def _wrap_set_eof(orig: Callable[..., Any]) -> Callable[..., Any]:
    def set_eof(self: Any) -> None:
        orig(self)
        st = _writer_request(self)
        if st is not None:
            _wrote_request(st, None)  # a request without a body: written

    return set_eof


def _wrap_write_eof(orig: Callable[..., Any]) -> Callable[..., Any]:
    def write_eof(self: Any, chunk: bytes = b"") -> Any:
        st = _writer_request(self)
        if st is None:
            return orig(self, chunk)
        return traced(st, self, chunk)

    async def traced(st: TracedRequest, self: Any, chunk: bytes) -> None:
        try:
            await orig(self, chunk)
        except BaseException as exc:
            _wrote_request(st, _canceled("request write") if _is_cancel(exc) else exc)
            raise
        _wrote_request(st, None)

    return write_eof


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError)


def _wrap_write_bytes(orig: Callable[..., Any]) -> Callable[..., Any]:
    def write_bytes(
        self: Any, writer: Any, conn: Any, *args: Any, **kwargs: Any
    ) -> Any:
        st = _BY_REQUEST.get(self)
        if st is None:
            return orig(self, writer, conn, *args, **kwargs)
        return traced(st, self, writer, conn, *args, **kwargs)

    async def traced(
        st: TracedRequest, self: Any, writer: Any, conn: Any, *args: Any, **kwargs: Any
    ) -> None:
        try:
            await orig(self, writer, conn, *args, **kwargs)
        except BaseException as exc:
            if st.state.body_withheld:
                # A final response came instead of 100 Continue and aiohttp cancels
                # the writer that held the body: not a failure (Go reports
                # WroteRequest without an error when it withholds the body).
                _wrote_request(st, None)
            else:
                _wrote_request(
                    st, _canceled("request write") if _is_cancel(exc) else exc
                )
            raise
        if not st.state.wrote_request:
            # write_bytes gave the body's failure to the protocol (the response
            # read raises it) and returned.
            err = writer._protocol.exception()
            _wrote_request(
                st, err if err is not None else ConnectionError("body not sent")
            )

    return write_bytes
