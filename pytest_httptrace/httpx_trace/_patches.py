"""The patch table: every class-level patch of a flavour, install and uninstall.

Each row names a class of the flavour, the attribute replaced and the factory that
wraps the original (``factory(original, flavour)``). `install` keeps the original of
every row and `uninstall` puts exactly that object back. Rows are keyed by class
identity, so under ``httpx2.alias_httpx()`` (httpx's classes *are* httpx2's) a class
is patched once, by the first flavour installed, and every hook fires once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..sources import mark_patch
from . import _call, _dial, _http2, _http11, _pool
from ._flavour import Flavour

Factory = Callable[[Callable[..., Any], Flavour], Callable[..., Any]]


def table(fl: Flavour) -> list[tuple[type, str, Factory]]:
    """The rows of flavour ``fl``: what is patched, and what drives which hooks."""
    return [
        # the call (when it returned) and the transport (get_conn, trace callback)
        (fl.Client, "send", _call.send),
        (fl.AsyncClient, "send", _call.async_send),
        (fl.HTTPTransport, "handle_request", _call.handle_request),
        (fl.AsyncHTTPTransport, "handle_async_request", _call.handle_async_request),
        # the pool: which connection a request got, when one closed
        (fl.HTTPConnection, "handle_request", _pool.conn_handle_request),
        (fl.AsyncHTTPConnection, "handle_async_request", _pool.conn_handle_request),
        (fl.HTTP11Connection, "close", _pool.close),
        (fl.AsyncHTTP11Connection, "aclose", _pool.close),
        (fl.HTTP2Connection, "close", _pool.close),
        (fl.AsyncHTTP2Connection, "aclose", _pool.close),
        (fl.ConnectionPool, "close", _pool.pool_close),
        (fl.AsyncConnectionPool, "aclose", _pool.pool_close),
        # dialing: DNS and one connect per address
        (fl.SyncBackend, "connect_tcp", _dial.sync_connect_tcp),
        (fl.AnyIOBackend, "connect_tcp", _dial.async_connect_tcp),
        # HTTP/1.1: first byte, 1xx
        (fl.SyncStream, "read", _http11.sync_read),
        (fl.AnyIOStream, "read", _http11.async_read),
        (fl.HTTP11Connection, "_receive_event", _http11.sync_receive_event),
        (fl.AsyncHTTP11Connection, "_receive_event", _http11.async_receive_event),
        # HTTP/2: first byte and 1xx, routed by stream id
        (fl.HTTP2Connection, "_read_incoming_data", _http2.sync_read_incoming),
        (fl.AsyncHTTP2Connection, "_read_incoming_data", _http2.async_read_incoming),
    ]


#: (class, attribute) -> (the flavour that patched it, the original, our patch).
_originals: dict[tuple[type, str], tuple[str, Any, Any]] = {}


def install(fl: Flavour) -> None:
    """Patch every row of ``fl`` not patched already (by another flavour's row for
    the same class, under aliasing)."""
    fl.check_versions()
    for cls, name, wrap in table(fl):
        if (cls, name) in _originals:
            continue
        original = cls.__dict__[name]
        patched = wrap(original, fl)
        mark_patch(patched, original, name)
        _originals[(cls, name)] = (fl.name, original, patched)
        setattr(cls, name, patched)


def uninstall(flavour: str) -> None:
    """Restore the exact original functions of the rows ``flavour`` patched.

    A row whose attribute is no longer our patch was patched again by someone else
    (a mocking library) or already put back: it is left as found, so that their own
    restore, in whatever order it comes, restores what they saw.
    """
    for key, (owner, original, patched) in list(_originals.items()):
        if owner == flavour:
            cls, name = key
            if cls.__dict__.get(name) is patched:
                setattr(cls, name, original)
            del _originals[key]


def installed(flavour: str | None = None) -> bool:
    return any(flavour in (None, owner) for owner, _, _ in _originals.values())


def replaced(flavour: str) -> list[str]:
    """Rows of ``flavour`` whose patch someone replaced while installed, as
    ``"Class.attr (package)"``: their calls skip our instrumentation."""
    found = []
    for (cls, name), (owner, _, patched) in _originals.items():
        now = cls.__dict__.get(name)
        if owner == flavour and now is not patched:
            module = getattr(now, "__module__", None) or "?"
            found.append(f"{cls.__name__}.{name} ({module.partition('.')[0]})")
    return found


def current_functions(fl: Flavour) -> dict[tuple[type, str], Any]:
    """Every patched attribute of ``fl`` as found in its class now."""
    return {(cls, name): cls.__dict__[name] for cls, name, _ in table(fl)}
