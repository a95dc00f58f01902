"""Every patch of the urllib3 source, the version check, install and uninstall.

Written for urllib3 2.x (tested on 2.0, 2.2 and 2.8) and CPython's http.client
(3.10-3.13).
"""

from __future__ import annotations

import http.client
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import urllib3.util.connection
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager
from urllib3.response import HTTPResponse

from ..sources import mark_patch
from ._call import _boundary, _urlopen
from ._dial import _connect, _create_connection
from ._pool import _close, _get_conn, _put_conn, _response_close
from ._read import _getresponse, _read_status
from ._source import SUPPORTED, TESTED, check_version
from ._write import _endheaders, _putheader, _request

__all__ = ["SUPPORTED", "TESTED", "check_version", "install", "uninstall"]

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]

#: (class or module, attribute, wrapper). ``endheaders`` is http.client's, reached
#: through urllib3's subclass: we set it on the subclass only (other users of
#: http.client are untouched) and delete it again at uninstall.
_PATCHES: list[tuple[type | ModuleType, str, Wrap]] = [
    (PoolManager, "urlopen", _boundary),
    (ProxyManager, "urlopen", _boundary),
    (HTTPConnectionPool, "urlopen", _urlopen),
    (HTTPConnectionPool, "_get_conn", _get_conn),
    (HTTPConnectionPool, "_put_conn", _put_conn),
    (
        urllib3.util.connection,
        "create_connection",
        lambda orig: _create_connection(
            orig, urllib3.util.connection.allowed_gai_family
        ),
    ),
    (HTTPConnection, "connect", lambda orig: _connect(orig, tls=False)),
    (HTTPSConnection, "connect", lambda orig: _connect(orig, tls=True)),
    (HTTPConnection, "putheader", _putheader),
    (HTTPConnection, "endheaders", _endheaders),
    (HTTPConnection, "request", _request),
    (HTTPConnection, "getresponse", _getresponse),
    (HTTPConnection, "close", _close),
    (HTTPResponse, "close", _response_close),
    (http.client.HTTPResponse, "_read_status", _read_status),
]

_MISSING = object()
#: (owner, attribute) -> what its own __dict__ held (``_MISSING``: inherited).
_originals: dict[tuple[Any, str], Any] = {}


def install() -> None:
    """Patch urllib3 and http.client (the first trace or recorder started)."""
    if _originals:
        return
    check_version()  # again, for a direct caller (the source checks first)
    for owner, name, wrap in _PATCHES:
        _originals[(owner, name)] = vars(owner).get(name, _MISSING)
        current = getattr(owner, name)
        patched = wrap(current)
        mark_patch(patched, current, name)
        setattr(owner, name, patched)


def uninstall() -> None:
    """Restore the exact originals (the last trace ended)."""
    for (owner, name), original in reversed(_originals.items()):
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _originals.clear()


def installed() -> bool:
    return bool(_originals)


def patched_functions() -> dict[tuple[Any, str], Any]:
    """Every patched attribute as found now (for the isolation checks)."""
    found: dict[tuple[Any, str], Any] = {}
    for owner, name, _ in _PATCHES:
        module = owner.__name__ if isinstance(owner, ModuleType) else owner.__module__
        if module in sys.modules:
            found[(owner, name)] = getattr(owner, name)
    return found
