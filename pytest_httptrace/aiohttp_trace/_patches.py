"""Every patch of aiohttp (and of its dialer, aiohappyeyeballs), the version check,
install and uninstall.

Each entry is (owner, attribute, wrapper). Most owners are aiohttp classes; one is
the module ``aiohappyeyeballs.impl`` (its ``_connect_sock`` dials one address: see
``_dial``). An attribute a class only inherits (``ResponseHandler.read`` and
``connection_made``) is added to that class and deleted again at uninstall, so the
class's own ``__dict__`` is exactly as shipped afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohappyeyeballs
import aiohappyeyeballs.impl
import aiohttp
from aiohttp.client import ClientSession
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import BaseConnector, TCPConnector
from aiohttp.http_writer import StreamWriter

from ..sources import UnsupportedVersionError, mark_patch
from ._call import _wrap_request
from ._core import _ACTIVE, _BY_REQUEST, _HANDSHAKING, _READING
from ._dial import (
    _wrap_connect_sock,
    _wrap_connection_made,
    _wrap_create,
    _wrap_protocol_init,
    _wrap_resolve_host,
)
from ._pool import (
    _wrap_cleanup,
    _wrap_close,
    _wrap_connect,
    _wrap_connection_lost,
    _wrap_get,
    _wrap_release,
)
from ._read import _wrap_data_received, _wrap_read
from ._write import (
    _wrap_send_headers,
    _wrap_set_eof,
    _wrap_write_bytes,
    _wrap_write_eof,
    _wrap_write_headers,
)

#: Versions this package was written and tested for (prefixes).
SUPPORTED = {"aiohttp": ("3.14.",), "aiohappyeyeballs": ("2.",)}
_PINS = {"aiohttp": "aiohttp>=3.14,<3.15", "aiohappyeyeballs": "aiohappyeyeballs>=2,<3"}

Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]

_PATCHES: list[tuple[Any, str, Wrapper]] = [
    (ClientSession, "_request", _wrap_request),
    (BaseConnector, "connect", _wrap_connect),
    (BaseConnector, "_release", _wrap_release),
    (BaseConnector, "_get", _wrap_get),
    (BaseConnector, "_cleanup", _wrap_cleanup),
    (BaseConnector, "_close", _wrap_close),
    (TCPConnector, "_resolve_host", _wrap_resolve_host),
    (aiohappyeyeballs.impl, "_connect_sock", _wrap_connect_sock),
    (TCPConnector, "_wrap_create_connection", _wrap_create),
    (ResponseHandler, "__init__", _wrap_protocol_init),
    (ResponseHandler, "connection_made", _wrap_connection_made),
    (ResponseHandler, "connection_lost", _wrap_connection_lost),
    (ResponseHandler, "data_received", _wrap_data_received),
    (ResponseHandler, "read", _wrap_read),
    (StreamWriter, "write_headers", _wrap_write_headers),
    (StreamWriter, "send_headers", _wrap_send_headers),
    (StreamWriter, "set_eof", _wrap_set_eof),
    (StreamWriter, "write_eof", _wrap_write_eof),
    (ClientRequest, "write_bytes", _wrap_write_bytes),
]

_MISSING = object()
#: (owner, attribute) -> what the owner's own __dict__ held (_MISSING: nothing).
_originals: dict[tuple[Any, str], Any] = {}
_checked = False


def check_versions() -> None:
    """Raise `UnsupportedVersionError` on an aiohttp we were not written for."""
    global _checked
    if _checked:
        return
    found = {
        "aiohttp": aiohttp.__version__,
        "aiohappyeyeballs": aiohappyeyeballs.__version__,
    }
    for dist, prefixes in SUPPORTED.items():
        if not found[dist].startswith(prefixes):
            wanted = " or ".join(p + "x" for p in prefixes)
            raise UnsupportedVersionError(
                f"pytest-httptrace traces {dist} {wanted}, found {dist} "
                f"{found[dist]}: its aiohttp instrumentation patches private parts "
                "of aiohttp and would not tell the truth on another version. "
                f"Install a supported version (pip install '{_PINS[dist]}'), "
                "or disable the plugin with -p no:httptrace."
            )
    _checked = True


def install() -> None:
    """Patch aiohttp (called when the first trace or recorder starts)."""
    if _originals:
        return
    check_versions()
    for owner, name, wrap in _PATCHES:
        own = vars(owner).get(name, _MISSING)
        original = own if own is not _MISSING else getattr(owner, name)
        patched = wrap(original)
        mark_patch(patched, original, name)
        _originals[(owner, name)] = own
        setattr(owner, name, patched)


def uninstall() -> None:
    """Restore exactly what was there (called when the last trace ends)."""
    for (owner, name), own in reversed(_originals.items()):
        if own is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, own)
    _originals.clear()
    # Requests still in flight keep no trace (nor its recorder) alive through us;
    # connection records stay (they hold their connections, and the last request
    # each served, weakly).
    for requests in (_ACTIVE, _READING, _HANDSHAKING, _BY_REQUEST):
        requests.clear()


def installed() -> bool:
    return bool(_originals)


def original_functions() -> dict[tuple[Any, str], Any]:
    """What every patched attribute is now, in its owner's own namespace (None: not
    there, as shipped for an inherited one): for isolation checks."""
    return {(owner, name): vars(owner).get(name) for owner, name, _ in _PATCHES}
