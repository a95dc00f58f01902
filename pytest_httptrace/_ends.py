"""How a request ended and why its connection closed, as the words every view uses
(timelines, the waterfall, the HTML report): one vocabulary for the end hooks.

Example::

    >>> OUTCOME_TEXT["closed_early"], CLOSE_TEXT["server"]
    ('closed early', 'closed by the server')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recorder import ConnectionRecord, RequestRecord

__all__ = ["CLOSE_TEXT", "OUTCOME_TEXT", "closed_connection"]

#: `RequestRecord.outcome` in words.
OUTCOME_TEXT: dict[str, str] = {
    "complete": "complete",
    "closed_early": "closed early",
    "failed": "failed",
}

#: `ConnectionRecord.close_reason` in words (a key of `CONN_CLOSE_REASONS`).
CLOSE_TEXT: dict[str, str] = {
    "client": "closed by the client",
    "server": "closed by the server",
    "idle_expired": "closed after its keep-alive expired",
    "pool_full": "discarded by the pool (too many idle)",
    "protocol_error": "closed after a protocol error",
    "client_closed": "closed with its client",
}


def closed_connection(request: RequestRecord) -> ConnectionRecord | None:
    """The connection of ``request`` if it closed for a known reason after serving
    ``request`` last (the request whose ``conn_closed`` it is), else None."""
    conn = request.connection
    if (
        conn is None
        or conn.close_reason is None
        or not conn.requests
        or conn.requests[-1] is not request
    ):
        return None
    return conn
