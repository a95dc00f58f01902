"""The aiohttp source: what the model's registry sees of this package."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..sources import LibraryStatus

#: Mirrors ``_patches.SUPPORTED`` (that module imports aiohttp; this one must not).
_SUPPORTED_PREFIX = "3.14."


class AiohttpSource:
    """aiohttp (``ClientSession``, HTTP/1.1) as a source of hook calls."""

    name = "aiohttp"
    leak_hint = (
        "use `async with session.get(...) as response:`, or call "
        "`response.release()` once done with the body."
    )
    trigger = "aiohttp"
    internal_modules = (
        "aiohttp",
        "aiohappyeyeballs",
        "aiosignal",
        "multidict",
        "yarl",
        "propcache",
        "frozenlist",
    )

    def libraries(self) -> list[LibraryStatus]:
        try:
            found = version("aiohttp")
        except PackageNotFoundError:
            return [LibraryStatus("aiohttp", None, False)]
        supported = found.startswith(_SUPPORTED_PREFIX)
        note = "" if supported else "supported: aiohttp 3.14.x"
        return [LibraryStatus("aiohttp", found, supported, note)]

    def install(self) -> None:
        from . import _patches

        _patches.install()

    def uninstall(self) -> None:
        if "pytest_httptrace.aiohttp_trace._patches" not in sys.modules:
            return  # never installed
        from . import _patches

        _patches.uninstall()

    def patched_functions(self) -> dict[tuple[Any, str], Any]:
        if "aiohttp" not in sys.modules:
            return {}
        from . import _patches

        return _patches.original_functions()

    def diagnose(self) -> list[str]:
        lines = []
        for status in self.libraries():
            if status.version is not None and not status.supported:
                lines.append(
                    f"aiohttp {status.version} is not supported (3.14.x is): "
                    "its requests were not recorded."
                )
        return lines


AIOHTTP = AiohttpSource()
