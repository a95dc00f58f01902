"""Reading the response: ``got_first_response_byte``, every interim ``1xx``
(``got_1xx_response``, ``got_100_continue``), the final status.

Written for aiohttp 3.14 ``client_proto.ResponseHandler``: the protocol's
``data_received`` gets the bytes (the first of them is Go's first response byte);
``ClientResponse.start`` awaits ``protocol.read()`` (``DataQueue.read``, inherited)
once per parsed response head and *skips* every 1xx but 101 without a trace: the
only place an interim response can be seen. We add ``read`` to ``ResponseHandler``
itself (removed again at uninstall), so other ``DataQueue`` users are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace import TracedRequest
from ._core import _ACTIVE, _READING, AiohttpRequestAbortedByHook


def _wrap_data_received(orig: Callable[..., Any]) -> Callable[..., Any]:
    def data_received(self: Any, data: bytes) -> None:
        if data:
            st = _READING.pop(self, None)
            if st is not None:
                st.fire("got_first_response_byte")
        orig(self, data)

    return data_received


def _wrap_read(orig: Callable[..., Any]) -> Callable[..., Any]:
    def read(self: Any) -> Any:
        st = _ACTIVE.get(self)
        if st is None:
            return orig(self)
        return traced(st, self)

    async def traced(st: TracedRequest, self: Any) -> Any:
        item = await orig(self)
        message = item[0]
        code = message.code
        if 100 <= code <= 199 and code != 101:  # 101 is final, as in Go
            _interim(st, code, message.headers)
        else:
            st.status = code
            st.state.payload = item[1]
            if st.state.expect_continue and not st.state.got_100:
                st.state.body_withheld = True
        return item

    return read


def _interim(st: TracedRequest, code: int, headers: Any) -> None:
    if code == 100 and st.state.expect_continue and not st.state.got_100:
        st.state.got_100 = True
        st.fire("got_100_continue")
    try:
        st.fire_got_1xx(code, headers)
    except Exception as exc:
        # As in Go, a got_1xx_response hook that raises aborts the request:
        # ClientResponse.start raises, aiohttp closes the response and the
        # connection (never pooled).
        st.abort = exc
        raise AiohttpRequestAbortedByHook(
            f"request aborted: the got_1xx_response hook raised {exc!r}"
        ) from exc
