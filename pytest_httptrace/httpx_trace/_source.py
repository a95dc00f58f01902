"""The httpx source in its two flavours, as the model's registry sees it."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..sources import LibraryStatus
from . import _flavour
from ._flavour import MODULES, SUPPORTED


class HttpxSource:
    """httpx + httpcore, or httpx2 + httpcore2, as a source of hook calls.

    Installed when its client module is imported while a trace or recorder is in
    effect; the patches themselves are imported only then (``_patches``).
    """

    internal_modules = (
        "httpx",
        "httpcore",
        "httpx2",
        "httpcore2",
        "h11",
        "h2",
        "hpack",
        "hyperframe",
        "anyio",
        "sniffio",
    )

    leak_hint = (
        "use `with client.stream(...) as response:` (`async with` for "
        "AsyncClient), or call `response.close()` (`await response.aclose()`)."
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.trigger = MODULES[name][0]

    def __repr__(self) -> str:
        return f"<HttpxSource {self.name}>"

    def _shadowed(self) -> bool:
        """httpx under ``alias_httpx()``: its classes are httpx2's (that source)."""
        return self.name == "httpx" and _flavour.aliased()

    def libraries(self) -> list[LibraryStatus]:
        client = MODULES[self.name][0]
        if self._shadowed():
            return [LibraryStatus(client, version("httpx2"), True, "aliased to httpx2")]
        try:
            found = version(client)
        except PackageNotFoundError:
            return [LibraryStatus(client, None, False)]
        module = sys.modules.get(client)
        found = getattr(module, "__version__", found)
        prefixes = SUPPORTED[self.name][client]
        wanted = " or ".join(p + "x" for p in prefixes)
        ok = found.startswith(prefixes)
        return [LibraryStatus(client, found, ok, "" if ok else f"supported: {wanted}")]

    def install(self) -> None:
        if self._shadowed():
            return
        from . import _patches
        from ._state import BYPASSED

        BYPASSED.pop(self.name, None)
        _patches.install(_flavour.load(self.name))

    def uninstall(self) -> None:
        from . import _patches
        from ._state import CONNS, lock

        _patches.uninstall(self.name)
        # A connection's record holds its last request (whose trace hears
        # conn_closed), and through that trace its recorder, which holds the
        # connection: untraced now, let go, or a connection never closed (a leaked
        # response, a client left to the garbage collector) would stay alive.
        with lock:
            records = list(CONNS.values())
        for record in records:
            source = getattr(record.last_request, "source", None)
            if source is not None and source.name == self.name:
                record.last_request = None

    def patched_functions(self) -> dict[tuple[type, str], Any]:
        if self._shadowed() or _flavour.imported(self.name) is None:
            return {}
        from . import _patches

        return _patches.current_functions(_flavour.load(self.name))

    def diagnose(self) -> list[str]:
        from ._state import BYPASSED

        lines: list[str] = []
        if self._shadowed() or _flavour.imported(self.name) is None:
            return lines
        from . import _patches

        for row in _patches.replaced(self.name):
            lines.append(
                f"{row} replaced the instrumentation's patch while recording (a "
                "mocking library?): requests it answers never reach a connection, "
                "so they have no hooks."
            )
        for transport, count in BYPASSED.get(self.name, {}).items():
            calls = "call was" if count == 1 else f"{count} calls were"
            lines.append(
                f"{calls} answered by {transport}, an {MODULES[self.name][0]} "
                "transport that bypasses the connection pool (no connection, so "
                "no hook): use the default HTTPTransport against a local server "
                "(httptrace_server) to trace the lifecycle."
            )
        for status in self.libraries():
            if not status.supported:
                wanted = status.note.removeprefix("supported: ")
                lines.append(
                    f"{status.library} {status.version} is imported, but "
                    f"pytest-httptrace traces only {wanted}: its requests are not "
                    "recorded."
                )
        return lines


HTTPX = HttpxSource("httpx")
HTTPX2 = HttpxSource("httpx2")
