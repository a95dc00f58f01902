"""Reading the response: ``got_first_response_byte``, a skipped ``100 Continue``
(``got_100_continue``, ``got_1xx_response(100)``), the final status.

Written for urllib3 2.x over CPython's ``http.client`` (3.10-3.13):
``HTTPResponse.begin`` reads status lines with the private ``_read_status`` and
skips every ``100`` response (its headers discarded unread by us); any other 1xx,
``103 Early Hints`` included, is taken as the *final* response. We observe
``_read_status`` only inside a traced urllib3 ``getresponse`` (never for other users
of http.client, never for a proxy's CONNECT reply), peeking at the first byte in
http.client's own buffered reader: the bytes are then read by http.client as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from urllib3._collections import HTTPHeaderDict

from ..trace import TracedRequest
from ._state import _CURRENT, RequestAbortedByHook, _ours


def _getresponse(orig: Callable[..., Any]) -> Callable[..., Any]:
    def getresponse(self: Any) -> Any:
        st = _CURRENT.get()
        if not _ours(st, self):
            return orig(self)
        assert st is not None
        st.state.reading = True
        try:
            response = orig(self)
        except BaseException as exc:
            st.error = exc
            raise
        finally:
            st.state.reading = False
        return response

    return getresponse


def _read_status(orig: Callable[..., Any]) -> Callable[..., Any]:
    def read_status(self: Any) -> Any:
        st = _CURRENT.get()
        if st is None or not st.state.reading:
            return orig(self)
        state = st.state
        state.http_response = self
        if not state.first_byte:
            peek = getattr(self.fp, "peek", None)
            # Blocks as readline() would; its errors are readline()'s. As in Go, the
            # hook fires only when a byte is there: not for a connection closed
            # before any (http.client then raises RemoteDisconnected).
            if peek is not None and peek(1):
                state.first_byte = True
                st.fire("got_first_response_byte")
        status_line = orig(self)
        if not state.first_byte:  # a reader without peek(): the line is in
            state.first_byte = True
            st.fire("got_first_response_byte")
        if status_line[1] == 100:
            _skipped_100(st)
        else:  # the final response, as http.client takes it (a 103 too)
            st.status = status_line[1]
        return status_line

    return read_status


def _skipped_100(st: TracedRequest) -> None:
    """http.client skips a 100 response: report it (an exception from the
    got_1xx_response hook aborts the request, as in Go)."""
    if st.state.expect_continue and not st.state.got_100:
        st.state.got_100 = True
        st.fire("got_100_continue")
    try:
        st.fire_got_1xx(100, HTTPHeaderDict())
    except Exception as exc:
        st.abort = exc
        raise RequestAbortedByHook(
            f"request aborted: the got_1xx_response hook raised {exc!r}"
        ) from exc
