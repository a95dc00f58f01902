"""How httpx/httpcore and httpx2/httpcore2 drive the `ClientTrace` hooks: one
source, two flavours (``HTTPX`` and ``HTTPX2``). Every patch of either library lives
in this package; importing it imports neither library.

Written for httpx 0.27/0.28 + httpcore 1.0.x and httpx2 + httpcore2 2.16.x (checked
at install, from the modules actually patched). httpx has no seam for most of what
Go's httptrace reports: its transport cannot be given a network backend, httpcore's
``trace`` extension has no pool checkout, no DNS, no 1xx and no connection identity.
So while a trace is in effect we patch, at class level, and restore the exact
original functions afterwards (the table is in ``_patches``). None of the patches
change what the client sends or receives: they observe, then call the original (the
one exception is the opt-in waiting mode for ``100 Continue``). Hooks never raise
into httpcore, because an exception inside its bookkeeping leaves pooled
connections stuck ACTIVE.

Where things are, by concern:

- ``_source``: the two sources the model's registry sees;
- ``_flavour``: httpx vs httpx2 resolved (classes, exceptions), and every private
  attribute read;
- ``_patches``: the patch table, install / uninstall;
- ``_call``: the call and the transport (``get_conn``, the httpcore callback);
- ``_events``: httpcore's trace events turned into hooks;
- ``_pool``: ``got_conn``, ``put_idle_conn``, connection close;
- ``_dial``: DNS and connect (happy eyeballs for async);
- ``_http11`` / ``_http2``: first byte and 1xx per protocol (HTTP/2 headers as h2
  sends them, streams routed by id);
- ``_interim``: the first-byte and 1xx hooks they share;
- ``_continue``: the opt-in waiting mode;
- ``_state``: per-request state and shared registries.
"""

from __future__ import annotations

from ..trace import RequestAbortedByHook
from ._continue import set_wait_default, wait_default, wait_for_100_continue
from ._dial import HAPPY_EYEBALLS_DELAY
from ._flavour import SUPPORTED
from ._source import HTTPX, HTTPX2, HttpxSource

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "HTTPX",
    "HTTPX2",
    "SUPPORTED",
    "HttpxSource",
    "RequestAbortedByHook",
    "set_wait_default",
    "wait_default",
    "wait_for_100_continue",
]
