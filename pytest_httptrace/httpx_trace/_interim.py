"""The first response byte and interim (1xx) responses: the hooks shared by
HTTP/1.1, HTTP/2 and the waiting mode."""

from __future__ import annotations

from typing import Any

from ..trace import TracedRequest
from ._state import RequestState, state


def first_byte(st: TracedRequest) -> None:
    """``got_first_response_byte``, once per request."""
    s: RequestState = st.state
    if not s.first_byte:
        s.first_byte = True
        s.await_first_byte = False
        st.fire("got_first_response_byte")


def got_1xx(st: TracedRequest, code: int, headers: Any) -> None:
    """Fire the hooks of one interim response; an exception from got_1xx_response
    propagates (the caller aborts the request)."""
    first_byte(st)
    s = state(st)
    if code == 100 and s.expect_continue and not s.got_100:
        s.got_100 = True
        st.fire("got_100_continue")
    try:
        st.fire_got_1xx(code, headers)
    except Exception as exc:
        st.abort = exc
        raise
