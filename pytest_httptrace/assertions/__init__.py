"""Assertions over recorded hook calls, with failure messages a person can read.

`assert_hook_sequence` matches the hooks of a request against a pattern of hook names,
`hook(...)` matchers and ``...`` (any run of hooks). The other helpers answer the
questions a test asks most: which request came first, were two requests in flight
at once, how many connections were open, was a connection reused, did a hook run
after the call returned, was a response left open.

Every helper raises a plain `AssertionError` whose text is built here on purpose (it
does not rely on pytest's assertion rewriting) and hides its own frames from the
traceback (``__tracebackhide__``). `render_timeline` is the renderer the messages
use; the plugin's report section uses it too.

This package is the public import path (``pytest_httptrace.assertions.X``); the
helpers live in one module per concern: `_matcher` (``hook()``), `_subject` (what a
helper was given), `_sequence` (the glob matcher), `_relations` (order, concurrency,
connections), `_leaks`, `_budgets` (phase budgets), `_timeline` and `_format`.

Example::

    def test_second_request_reuses_the_connection(httptrace_recorder, httptrace_server):
        with httptrace_server.client() as client:
            client.get(httptrace_server.url())
            client.get(httptrace_server.url())
        first, second = httptrace_recorder.requests
        assert_hook_sequence(second, ["get_conn", hook("got_conn", reused=True), ...])
"""

from __future__ import annotations

# Private names other modules of the plugin, the tests and the benchmarks import
# from here keep their old path (``X as X``: re-exported on purpose).
from ._budgets import Budget as Budget
from ._budgets import assert_phases
from ._format import _conn_label as _conn_label
from ._format import _got_conn as _got_conn
from ._format import _ms as _ms
from ._leaks import _is_leak as _is_leak
from ._leaks import assert_no_leaks, find_leaks
from ._matcher import HookMatcher, PatternItem, hook
from ._pool import assert_pool_wait, pool_holders, pool_wait
from ._relations import _interval as _interval
from ._relations import (
    assert_after_return,
    assert_concurrent,
    assert_connections_opened,
    assert_hook_order,
    assert_max_connections,
    assert_new_connection,
    assert_reused,
    assert_shared_connection,
)
from ._sequence import OPT_IN_HOOKS as OPT_IN_HOOKS
from ._sequence import _match as _match
from ._sequence import assert_hook_sequence
from ._subject import Source as Source
from ._subject import _nothing_recorded as _nothing_recorded
from ._timeline import _requests_not_shown as _requests_not_shown
from ._timeline import render_timeline

__all__ = [
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
]
