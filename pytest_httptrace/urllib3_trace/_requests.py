"""requests' ``Session.send`` as the call boundary (requests 2.32+).

requests drives urllib3 (its ``HTTPAdapter`` calls ``HTTPConnectionPool.urlopen``),
so the urllib3 source does all the tracing. Only the *call* is requests': a
``Session.send`` reads a non-streamed body and follows redirects (a ``send`` inside
``send``, one call) before it returns, so that is where hook exceptions are raised
and what "the call returned" means. ``Session.send`` is public; we wrap it.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import requests

from ..sources import UnsupportedVersionError, mark_patch
from ._call import _boundary
from ._source import _parse

_originals: dict[str, Any] = {}


def check_version() -> None:
    found = version("requests")
    if not (2, 32) <= _parse(found) < (3,):
        raise UnsupportedVersionError(
            f"pytest-httptrace traces requests 2.32 or later (2.x), found requests "
            f"{found}: install requests>=2.32, or disable the plugin with "
            "-p no:httptrace."
        )


def install() -> None:
    if _originals:
        return
    check_version()
    original = requests.Session.__dict__["send"]
    patched = _boundary(original)
    mark_patch(patched, original, "send")
    _originals["send"] = original
    requests.Session.send = patched  # type: ignore[method-assign]


def uninstall() -> None:
    original = _originals.pop("send", None)
    if original is not None:
        requests.Session.send = original  # type: ignore[method-assign]


def patched_functions() -> dict[tuple[Any, str], Any]:
    return {(requests.Session, "send"): requests.Session.__dict__["send"]}
