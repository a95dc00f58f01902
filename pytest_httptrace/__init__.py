"""pytest-httptrace: assert the lifecycle of HTTP requests (Go's httptrace hooks).

Only public names live here. They are loaded on first use (PEP 562), so importing
the package, which every pytest run with the plugin installed does, costs next to
nothing: the trace model, httpx, hypercorn and trustme load when a feature needs them.
"""

from __future__ import annotations

from contextlib import suppress
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._phases import PHASE_NAMES, Phase, phases
    from ._recording import HTTPTraceLeakWarning
    from ._reuse import NEW_CONNECTION_CAUSES, ReuseVerdict, reuse_verdict
    from .assertions import (
        HookMatcher,
        PatternItem,
        assert_after_return,
        assert_concurrent,
        assert_connections_opened,
        assert_hook_order,
        assert_hook_sequence,
        assert_max_connections,
        assert_new_connection,
        assert_no_leaks,
        assert_phases,
        assert_pool_wait,
        assert_reused,
        assert_shared_connection,
        find_leaks,
        hook,
        pool_holders,
        pool_wait,
        render_timeline,
    )
    from .httpx_trace import RequestAbortedByHook, wait_for_100_continue
    from .recorder import ConnectionRecord, Event, Recorder, RequestRecord
    from .trace import (
        CONN_CLOSE_REASONS,
        END_HOOK_NAMES,
        HOOK_NAMES,
        BodyClosedInfo,
        ClientTrace,
        ConnClosedInfo,
        DNSDoneInfo,
        DNSStartInfo,
        GotConnInfo,
        HookName,
        RequestDoneInfo,
        TLSConnectionState,
        WroteRequestInfo,
        context_client_trace,
        with_client_trace,
    )

_MODULES = {
    "trace": (
        "CONN_CLOSE_REASONS",
        "END_HOOK_NAMES",
        "HOOK_NAMES",
        "BodyClosedInfo",
        "ClientTrace",
        "ConnClosedInfo",
        "DNSDoneInfo",
        "DNSStartInfo",
        "GotConnInfo",
        "HookName",
        "RequestDoneInfo",
        "TLSConnectionState",
        "WroteRequestInfo",
        "context_client_trace",
        "with_client_trace",
    ),
    "_phases": ("PHASE_NAMES", "Phase", "phases"),
    "recorder": ("ConnectionRecord", "Event", "Recorder", "RequestRecord"),
    "assertions": (
        "HookMatcher",
        "PatternItem",
        "assert_after_return",
        "assert_concurrent",
        "assert_connections_opened",
        "assert_hook_order",
        "assert_hook_sequence",
        "assert_max_connections",
        "assert_new_connection",
        "assert_no_leaks",
        "assert_phases",
        "assert_pool_wait",
        "assert_reused",
        "assert_shared_connection",
        "find_leaks",
        "hook",
        "pool_holders",
        "pool_wait",
        "render_timeline",
    ),
    "httpx_trace": ("RequestAbortedByHook", "wait_for_100_continue"),
    "_recording": ("HTTPTraceLeakWarning",),
    "_reuse": ("NEW_CONNECTION_CAUSES", "ReuseVerdict", "reuse_verdict"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "CONN_CLOSE_REASONS",
    "END_HOOK_NAMES",
    "HOOK_NAMES",
    "NEW_CONNECTION_CAUSES",
    "PHASE_NAMES",
    "BodyClosedInfo",
    "ClientTrace",
    "ConnClosedInfo",
    "ConnectionRecord",
    "DNSDoneInfo",
    "DNSStartInfo",
    "Event",
    "GotConnInfo",
    "HTTPTraceLeakWarning",
    "HookMatcher",
    "HookName",
    "PatternItem",
    "Phase",
    "Recorder",
    "RequestAbortedByHook",
    "RequestDoneInfo",
    "RequestRecord",
    "ReuseVerdict",
    "TLSConnectionState",
    "WroteRequestInfo",
    "__version__",
    "assert_after_return",
    "assert_concurrent",
    "assert_connections_opened",
    "assert_hook_order",
    "assert_hook_sequence",
    "assert_max_connections",
    "assert_new_connection",
    "assert_no_leaks",
    "assert_phases",
    "assert_pool_wait",
    "assert_reused",
    "assert_shared_connection",
    "context_client_trace",
    "find_leaks",
    "hook",
    "phases",
    "pool_holders",
    "pool_wait",
    "render_timeline",
    "reuse_verdict",
    "wait_for_100_continue",
    "with_client_trace",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    if isinstance(value, type) or callable(value):
        with suppress(AttributeError, TypeError):
            value.__module__ = __name__  # reprs and docs read pytest_httptrace.X
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


assert set(__all__) == {*_WHERE, "__version__"}
