"""pytest-httptrace: assert the lifecycle of httpx requests (Go's httptrace hooks).

Only public names live here; importing this package is cheap (httpx, hypercorn and
trustme are imported when a feature needs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .recorder import ConnectionRecord, Event, Recorder, RequestRecord
from .trace import (
    HOOK_NAMES,
    ClientTrace,
    DNSDoneInfo,
    DNSStartInfo,
    GotConnInfo,
    HookName,
    TLSConnectionState,
    WroteRequestInfo,
    context_client_trace,
    with_client_trace,
)

if TYPE_CHECKING:
    from .httpx_trace import RequestAbortedByHook, wait_for_100_continue

#: Names whose module imports httpx: loaded on first use, so that importing the
#: package (which every pytest run with the plugin installed does) stays cheap.
_LAZY = {
    "RequestAbortedByHook": "httpx_trace",
    "wait_for_100_continue": "httpx_trace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "HOOK_NAMES",
    "ClientTrace",
    "ConnectionRecord",
    "DNSDoneInfo",
    "DNSStartInfo",
    "Event",
    "GotConnInfo",
    "HookName",
    "Recorder",
    "RequestAbortedByHook",
    "RequestRecord",
    "TLSConnectionState",
    "WroteRequestInfo",
    "__version__",
    "context_client_trace",
    "wait_for_100_continue",
    "with_client_trace",
]

for _name in __all__:
    if _name in _LAZY:
        continue
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = __name__
