"""How urllib3 2.x (and so requests) drives the `ClientTrace` hooks. Every patch
lives in this package; the table itself is in ``_patches``.

Written for urllib3 2.x (tested on 2.0, 2.2 and 2.8), requests 2.32+ and CPython's
http.client (3.10-3.13), HTTP/1.1 only (urllib3's experimental HTTP/2 is not
traced). urllib3 has no seam for what Go's httptrace reports: no checkout or return
event, no DNS or per-address dial, and the header lines are http.client's. So while
a trace is in effect we patch, at class level (one module function), and restore the
exact originals at `uninstall`:

===============================================  =====================================
patched                                          hooks it drives
===============================================  =====================================
``requests.Session.send``, ``PoolManager`` /     the call: returned, hook errors
``ProxyManager.urlopen``                         raised from it
``HTTPConnectionPool.urlopen``                   one request record per attempt
                                                 (retries, redirect hops); a failed
                                                 one's ``request_done``
``HTTPConnectionPool._get_conn``                 ``get_conn``; ``got_conn`` (pooled);
                                                 why a dropped one closes
``HTTPConnectionPool._put_conn``                 ``put_idle_conn``; ``body_closed``,
                                                 ``request_done``; a full pool's close
``urllib3.util.connection.create_connection``    ``dns_*``, ``connect_*`` per address,
                                                 ``tls_handshake_start``
``HTTPConnection/HTTPSConnection.connect``       ``tls_handshake_done``, ``got_conn``
                                                 (new connection)
``HTTPConnection.putheader`` / ``endheaders``    ``wrote_header_field``,
                                                 ``wrote_headers``
``HTTPConnection.request``                       ``wrote_request``
``HTTPConnection.getresponse``,                  ``got_first_response_byte``, a
``http.client.HTTPResponse._read_status``        skipped ``100``, the status
``HTTPConnection.close``                         ``conn_closed`` (why: who closed it),
                                                 the request's end if it held it
``urllib3.response.HTTPResponse.close``          closed before the body's end, or by
                                                 the garbage collector (a leak)
===============================================  =====================================

Nothing here changes what urllib3 sends or how its pool behaves: each wrapper
observes, then calls the original. Hooks never raise into urllib3 (see
`TracedRequest.fire`); the one exception is ``got_1xx_response``, whose exception
aborts the request as in Go (`RequestAbortedByHook`, a urllib3 ``HTTPError``).

Where things are: ``_call`` (the call and its attempts), ``_pool`` (checkout,
return, close), ``_dial`` (DNS, connect, TLS), ``_write`` (headers, body),
``_read`` (first byte, 100), ``_state`` (per-request state, records, helpers),
``_requests`` (requests' call boundary), ``_source`` (the registry's view).
"""

from __future__ import annotations

from typing import Any

from ._source import REQUESTS, URLLIB3

__all__ = ["REQUESTS", "URLLIB3", "RequestAbortedByHook"]


def __getattr__(name: str) -> Any:
    # Lazily: importing this package must not import urllib3.
    if name in ("RequestAbortedByHook", "TooManyIdleConnections", "IdlePoolClosed"):
        from . import _state

        return getattr(_state, name)
    raise AttributeError(name)
