"""Writing the request: ``wrote_header_field`` for each header line exactly as
http.client puts it on the wire, ``wrote_headers``, ``wrote_request``.

Written for urllib3 2.x over CPython's ``http.client`` (3.10-3.13): urllib3's
``HTTPConnection.request`` writes each header with ``putheader`` (http.client's own
``putrequest`` adds ``Host`` and ``Accept-Encoding`` through the same method), and
``http.client`` appends each encoded line to its private ``_buffer`` list, sent as
one block by ``endheaders``. We read the lines ``putheader`` appended: the bytes
that go out, in order. No public seam reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..trace import WroteRequestInfo
from ._state import _CURRENT, _flush_fields, _ours

_WROTE = WroteRequestInfo(err=None)  # frozen: one instance serves every request


def _putheader(orig: Callable[..., Any]) -> Callable[..., Any]:
    def putheader(self: Any, header: Any, *values: Any) -> None:
        st = _CURRENT.get()
        if not _ours(st, self) or "wrote_header_field" not in st.wanted:  # type: ignore[union-attr]
            return orig(self, header, *values)  # type: ignore[no-any-return]
        buffer = self._buffer  # http.client's private list of header lines
        before = len(buffer)
        orig(self, header, *values)
        st.state.fields.extend(buffer[before:])  # type: ignore[union-attr]

    return putheader


def _endheaders(orig: Callable[..., Any]) -> Callable[..., Any]:
    def endheaders(self: Any, message_body: Any = None, **kw: Any) -> None:
        st = _CURRENT.get()
        if not _ours(st, self):
            return orig(self, message_body, **kw)  # type: ignore[no-any-return]
        assert st is not None
        if st.state.got:
            _flush_fields(st)
        else:  # plain HTTP dials inside endheaders(): flush after got_conn
            st.state.flush_at_connect = True
        orig(self, message_body, **kw)
        st.fire("wrote_headers")

    return endheaders


def _expects_continue(headers: Mapping[str, str] | None) -> bool:
    if not headers:
        return False
    return any(
        str(k).lower() == "expect" and str(v).lower() == "100-continue"
        for k, v in headers.items()
    )


def _request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def request(
        self: Any,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> None:
        st = _CURRENT.get()
        if not _ours(st, self):
            return orig(self, method, url, body, headers, **kw)  # type: ignore[no-any-return]
        assert st is not None
        st.state.expect_continue = _expects_continue(headers)
        try:
            orig(self, method, url, body, headers, **kw)
        except BaseException as exc:
            st.error = exc
            st.state.fields = []
            if st.state.got:  # a failed dial wrote nothing: Go reports no write
                st.fire("wrote_request", WroteRequestInfo(err=exc))
            raise
        if "wrote_request" in st.wanted:
            st.fire("wrote_request", _WROTE)

    return request
