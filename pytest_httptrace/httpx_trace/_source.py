"""The httpx source: what the model's registry sees of this package."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..sources import LibraryStatus


class HttpxSource:
    """httpx + httpcore as a source of hook calls."""

    name = "httpx"
    trigger = "httpx"
    internal_modules = (
        "httpx",
        "httpcore",
        "h11",
        "h2",
        "hpack",
        "hyperframe",
        "anyio",
        "sniffio",
    )

    def libraries(self) -> list[LibraryStatus]:
        try:
            found = version("httpx")
        except PackageNotFoundError:
            return [LibraryStatus("httpx", None, False)]
        return [LibraryStatus("httpx", found, found.startswith(("0.27.", "0.28.")))]

    def install(self) -> None:
        from . import _patches

        _patches.install()

    def uninstall(self) -> None:
        from . import _patches

        _patches.uninstall()

    def patched_functions(self) -> dict[tuple[type, str], Any]:
        import sys

        if "httpx" not in sys.modules:
            return {}
        from . import _patches

        return _patches.original_functions()

    def diagnose(self) -> list[str]:
        return []


HTTPX = HttpxSource()
