"""pytest-httptrace: assert the lifecycle of httpx requests (Go's httptrace hooks).

Only public names live here; importing this package is cheap (httpx, hypercorn and
trustme are imported when a feature needs them).
"""

from __future__ import annotations

from ._version import __version__
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

__all__ = [
    "HOOK_NAMES",
    "ClientTrace",
    "DNSDoneInfo",
    "DNSStartInfo",
    "GotConnInfo",
    "HookName",
    "TLSConnectionState",
    "WroteRequestInfo",
    "__version__",
    "context_client_trace",
    "with_client_trace",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = __name__
