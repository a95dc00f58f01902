"""The end of a response answered without a connection (a mocking library such as
respx patches httpcore's pool): no httpcore close event reaches us, so its stream
says when it was read to its end and closed (``body_closed``, ``request_done``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..trace import TracedRequest
from ._flavour import Flavour

#: (flavour, async) -> the stream class that watches a mocked response's body.
_classes: dict[tuple[str, bool], type] = {}


def watch(fl: Flavour, st: TracedRequest, response: Any, is_async: bool) -> None:
    """Wrap ``response.stream`` (httpx's own byte stream, which the response reads
    and closes) so that its close ends ``st``; the bytes pass through unchanged."""
    cls = _classes.get((fl.name, is_async))
    if cls is None:
        cls = _classes[(fl.name, is_async)] = _make(fl, is_async)
    response.stream = cls(st, response.stream)


def _make(fl: Flavour, is_async: bool) -> type:
    if is_async:

        class AsyncWatched(fl.httpx.AsyncByteStream):  # type: ignore[name-defined,misc]
            def __init__(self, st: TracedRequest, stream: Any) -> None:
                self._st, self._stream, self._read = st, stream, False

            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in self._stream:
                    yield chunk
                self._read = True

            async def aclose(self) -> None:
                try:
                    await self._stream.aclose()
                finally:
                    self._st.body_closed(read_to_end=self._read)

        return AsyncWatched

    class Watched(fl.httpx.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, st: TracedRequest, stream: Any) -> None:
            self._st, self._stream, self._read = st, stream, False

        def __iter__(self) -> Iterator[bytes]:
            yield from self._stream
            self._read = True

        def close(self) -> None:
            try:
                self._stream.close()
            finally:
                self._st.body_closed(read_to_end=self._read)

    return Watched
