"""The urllib3 and requests sources: what the model's registry sees."""

from __future__ import annotations

import functools
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..sources import LibraryStatus, UnsupportedVersionError

#: urllib3 versions this source was written for (major.minor prefixes), and the
#: minors its tests ran on.
SUPPORTED = ("2.",)
TESTED = "2.0, 2.2 and 2.8"


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@functools.cache  # once per process: a recorder starts for every test
def check_version() -> None:
    """Fail with one clear message on a urllib3 this source was not written for,
    before anything of urllib3's is imported by us (urllib3 1.x lacks names the
    patches import)."""
    found = _installed("urllib3")
    if found is None or not found.startswith(SUPPORTED):
        raise UnsupportedVersionError(
            f"pytest-httptrace traces urllib3 2.x (tested on {TESTED}), found "
            f"urllib3 {found}. Its instrumentation patches private parts of urllib3 "
            "and would not tell the truth on another version: install urllib3>=2,<3 "
            "(requests 2.32+ works with it), or disable the plugin with "
            "-p no:httptrace."
        )


def _parse(version: str) -> tuple[int, ...]:
    """``"2.32.3"`` -> ``(2, 32)`` (enough to compare with a supported range)."""
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class Urllib3Source:
    """urllib3 2.x (and http.client under it) as a source of hook calls."""

    name = "urllib3"
    leak_hint = (
        "use `with session.get(url, stream=True) as response:` (requests), or call "
        "`response.close()`; with urllib3's `preload_content=False`, read the body "
        "and call `response.release_conn()`."
    )
    trigger = "urllib3"
    internal_modules = ("urllib3",)

    def libraries(self) -> list[LibraryStatus]:
        found = _installed("urllib3")
        supported = found is not None and found.startswith(SUPPORTED)
        note = "" if found is None or supported else "urllib3 2.x is supported"
        return [LibraryStatus("urllib3", found, supported, note)]

    def install(self) -> None:
        check_version()
        from . import _patches

        _patches.install()

    def uninstall(self) -> None:
        if "pytest_httptrace.urllib3_trace._patches" in sys.modules:
            from . import _patches

            _patches.uninstall()

    def patched_functions(self) -> dict[tuple[type, str], Any]:
        if "urllib3" not in sys.modules:
            return {}
        from . import _patches

        return _patches.patched_functions()

    def diagnose(self) -> list[str]:
        found = _installed("urllib3")
        if "urllib3" in sys.modules and found and not found.startswith("2."):
            return [
                f"urllib3 {found} is imported: only urllib3 2.x is traced, its "
                "requests (and those of requests) were not recorded."
            ]
        return []


class RequestsSource:
    """requests 2.32+: its ``Session.send`` is the call; urllib3 traces the rest."""

    name = "requests"
    trigger = "requests"
    internal_modules = ("requests",)

    def libraries(self) -> list[LibraryStatus]:
        found = _installed("requests")
        if found is None:
            return [LibraryStatus("requests", None, False)]
        supported = (2, 32) <= _parse(found) < (3,)
        return [LibraryStatus("requests", found, supported, "traced through urllib3")]

    def install(self) -> None:
        from . import _requests

        _requests.install()

    def uninstall(self) -> None:
        if "pytest_httptrace.urllib3_trace._requests" in sys.modules:
            from . import _requests

            _requests.uninstall()

    def patched_functions(self) -> dict[tuple[type, str], Any]:
        if "requests" not in sys.modules:
            return {}
        from . import _requests

        return _requests.patched_functions()

    def diagnose(self) -> list[str]:
        return []


URLLIB3 = Urllib3Source()
REQUESTS = RequestsSource()
