"""Every class-level patch, the version check, install and uninstall."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import httpx
from httpcore._async.connection import AsyncHTTPConnection
from httpcore._async.http2 import AsyncHTTP2Connection
from httpcore._async.http11 import AsyncHTTP11Connection
from httpcore._backends.anyio import AnyIOBackend, AnyIOStream
from httpcore._backends.sync import SyncBackend, SyncStream
from httpcore._sync.connection import HTTPConnection
from httpcore._sync.http2 import HTTP2Connection
from httpcore._sync.http11 import HTTP11Connection

from ..sources import mark_patch
from ._transport import (
    _async_handle_request,
    _async_send,
    _sync_handle_request,
    _sync_send,
)
from ._wire import (
    _async_close,
    _async_conn_handle_request,
    _async_connect_tcp,
    _async_read,
    _async_read_incoming,
    _async_receive_event,
    _sync_close,
    _sync_conn_handle_request,
    _sync_connect_tcp,
    _sync_read,
    _sync_read_incoming,
    _sync_receive_event,
)

#: Versions this module was written and tested for (major.minor prefixes).
SUPPORTED = {"httpx": ("0.27.", "0.28."), "httpcore": ("1.0.",)}


# -- install / uninstall -------------------------------------------------------------

_PATCHES: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
    (httpx.Client, "send", _sync_send),
    (httpx.AsyncClient, "send", _async_send),
    (httpx.HTTPTransport, "handle_request", _sync_handle_request),
    (httpx.AsyncHTTPTransport, "handle_async_request", _async_handle_request),
    (HTTPConnection, "handle_request", _sync_conn_handle_request),
    (AsyncHTTPConnection, "handle_async_request", _async_conn_handle_request),
    (SyncBackend, "connect_tcp", _sync_connect_tcp),
    (AnyIOBackend, "connect_tcp", _async_connect_tcp),
    (SyncStream, "read", _sync_read),
    (AnyIOStream, "read", _async_read),
    (HTTP11Connection, "_receive_event", _sync_receive_event),
    (AsyncHTTP11Connection, "_receive_event", _async_receive_event),
    (HTTP2Connection, "_read_incoming_data", _sync_read_incoming),
    (AsyncHTTP2Connection, "_read_incoming_data", _async_read_incoming),
    (HTTP11Connection, "close", _sync_close),
    (AsyncHTTP11Connection, "aclose", _async_close),
    (HTTP2Connection, "close", _sync_close),
    (AsyncHTTP2Connection, "aclose", _async_close),
]

_originals: dict[tuple[type, str], Any] = {}


@functools.cache
def check_versions() -> None:
    """Fail with one clear message on an httpx/httpcore we were not written for."""
    for dist, prefixes in SUPPORTED.items():
        found = version(dist)
        if not found.startswith(prefixes):
            wanted = " or ".join(p + "x" for p in prefixes)
            raise RuntimeError(
                f"pytest-httptrace supports {dist} {wanted}, found {dist} {found}. "
                "Its instrumentation patches private parts of httpx/httpcore and "
                "would not tell the truth on another version: install a supported "
                "version, or disable the plugin with -p no:httptrace."
            )


def install() -> None:
    """Patch httpx/httpcore (called when the first trace or recorder starts)."""
    if _originals:
        return
    check_versions()
    for cls, name, wrap in _PATCHES:
        original = cls.__dict__[name]
        _originals[(cls, name)] = original
        patched = wrap(original)
        mark_patch(patched, original, name)
        setattr(cls, name, patched)


def uninstall() -> None:
    """Restore the exact original functions (called when the last trace ends)."""
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()


def installed() -> bool:
    return bool(_originals)


def original_functions() -> dict[tuple[type, str], Any]:
    """The shipped functions of every patched attribute, as found in the classes now
    (for isolation checks: after uninstall these are the originals)."""
    return {(cls, name): cls.__dict__[name] for cls, name, _ in _PATCHES}
