"""How aiohttp's ``ClientSession`` drives the `ClientTrace` hooks (HTTP/1.1). Every
patch lives here, in this package (the table itself is in ``_patches``).

Written for aiohttp 3.14.x with aiohappyeyeballs 2.x (checked at `install`).
Importing this package does not import aiohttp: the registry installs the source
when aiohttp is imported while a trace or recorder is in effect.

Why patches and not aiohttp's own ``TraceConfig``: a TraceConfig only traces the
sessions built with it (``ClientSession(trace_configs=[...])``); putting ours into
every session's list would show it in ``session.trace_configs`` (the same list
object) and race with requests running on that session. And its signals cannot
tell what Go's hooks do: no addresses, no TLS, no connection identity, no 1xx
(aiohttp skips those without a signal), no return to the pool. So while tracing we
patch at class level, never touching a session, and restore the exact originals:

=============================================  ======================================
patched                                        hooks it drives
=============================================  ======================================
``ClientSession._request``                      the call returns (hook errors raised)
``BaseConnector.connect``                       ``get_conn``, ``got_conn``
``BaseConnector._release``                      ``put_idle_conn``, ends (ours)
``BaseConnector._get/_cleanup/_close``          ``conn_closed`` (ours)
``TCPConnector._resolve_host``                  ``dns_start``, ``dns_done``
``aiohappyeyeballs.impl._connect_sock``         ``connect_*`` (one per address tried)
``TCPConnector._wrap_create_connection``        a failed handshake, the connection
``ResponseHandler.__init__/connection_made``    ``tls_handshake_*``
``ResponseHandler.connection_lost``             ``conn_closed`` (ours)
``StreamWriter.write_headers``                  ``wrote_header_field``,
                                               ``wrote_headers``
``StreamWriter.send_headers``                   ``wait_100_continue``
``StreamWriter.set_eof/write_eof``,             ``wrote_request``
``ClientRequest.write_bytes``
``ResponseHandler.data_received``               ``got_first_response_byte``
``ResponseHandler.read``                        ``got_1xx_response``,
                                               ``got_100_continue``
=============================================  ======================================

Where things are: ``_patches`` (the table, versions, install), ``_call`` (the call),
``_pool`` (checkout and return), ``_dial`` (DNS, addresses, TLS), ``_write`` (the
request), ``_read`` (the response head), ``_core`` (state and maps), ``_session``
(sessions that trust the local test servers).
"""

from __future__ import annotations

from typing import Any

from ._source import AIOHTTP

__all__ = ["AIOHTTP", "AiohttpRequestAbortedByHook"]


def __getattr__(name: str) -> Any:
    # The exception subclasses aiohttp.ClientError: imported only when asked for.
    if name == "AiohttpRequestAbortedByHook":
        from ._core import AiohttpRequestAbortedByHook

        return AiohttpRequestAbortedByHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
