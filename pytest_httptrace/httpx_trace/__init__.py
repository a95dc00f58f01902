"""How httpx and httpcore drive the `ClientTrace` hooks. Every patch lives here,
in this package (the table of patches itself is in ``_patches``).

Written for httpx 0.27/0.28 and httpcore 1.0.x (checked at `install`). httpx has no
seam for most of what Go's httptrace reports: its transport cannot be given a network
backend, httpcore's ``trace`` extension has no pool checkout, no DNS, no 1xx and no
connection identity. So while a trace is in effect we patch, at class level, and
restore the exact original functions at `uninstall`:

=============================================  ======================================
patched                                        hooks it drives
=============================================  ======================================
``httpx.Client.send`` (+ async)                 marks when "the call" returns
``httpx.HTTPTransport.handle_request`` (+async)  ``get_conn``; installs the per-request
                                               httpcore ``trace`` callback, which
                                               drives ``got_conn``, ``wrote_*``,
                                               ``tls_*`` and ``put_idle_conn``
``httpcore.HTTPConnection.handle_request``     binds the request to its connection
``SyncBackend/AnyIOBackend.connect_tcp``       ``dns_*``, ``connect_*`` (one per
                                               address tried)
``SyncStream/AnyIOStream.read``                ``got_first_response_byte`` (HTTP/1.1)
``HTTP11Connection._receive_event``            ``got_1xx_response``,
                                               ``got_100_continue`` (HTTP/1.1)
``HTTP2Connection._read_incoming_data``        first byte and 1xx for HTTP/2, routed
                                               by stream id
``HTTP11Connection/HTTP2Connection.close``     connection closed time
=============================================  ======================================

None of these change what the client sends or receives: they observe, then call the
original. (The one exception is the opt-in waiting mode for ``100 Continue``.) Hooks
never raise into httpcore (see `TracedRequest.fire`), because an exception inside
httpcore's bookkeeping leaves pooled connections stuck ACTIVE.

Where things are:

- ``_patches``: the table above, the version check, `install` / `uninstall`;
- ``_transport``: the call and the transport (``get_conn``, the trace callback);
- ``_events``: httpcore's trace events of one request turned into hooks;
- ``_wire``: connections, DNS and dialing, reads, 1xx on both protocols;
- ``_continue``: the opt-in waiting mode;
- ``_core``: per-request state and the hook helpers shared by the above.
"""

from __future__ import annotations

from ._continue import set_wait_default, wait_default, wait_for_100_continue
from ._core import RequestAbortedByHook
from ._patches import (
    SUPPORTED,
    check_versions,
    install,
    installed,
    original_functions,
    uninstall,
)
from ._source import HTTPX
from ._wire import HAPPY_EYEBALLS_DELAY

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "HTTPX",
    "SUPPORTED",
    "RequestAbortedByHook",
    "check_versions",
    "install",
    "installed",
    "original_functions",
    "set_wait_default",
    "uninstall",
    "wait_default",
    "wait_for_100_continue",
]
