"""How the aiohttp tests make requests: one place to adapt when the scenarios move
to a shared client axis (one driver per client library)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")
Scenario = Callable[[aiohttp.ClientSession], Awaitable[T]]

#: The exception a failed request raises (what ``fetch`` returns instead).
ERROR = aiohttp.ClientError


@dataclass
class Result:
    status: int
    body: bytes


def run(
    server: Any,
    scenario: Scenario[T],
    connector: dict[str, Any] | None = None,
    **session_kwargs: Any,
) -> T:
    """Run ``scenario(session)`` on a new event loop with a session for ``server``,
    closing the session (and letting its TLS transports finish) afterwards.
    ``connector``: arguments of a ``TCPConnector`` (``ssl`` defaults to the server's
    context), made inside the loop."""

    async def main() -> T:
        if connector is not None:
            options = dict(connector)
            if server.tls:
                options.setdefault("ssl", server.ssl_context())
            session_kwargs["connector"] = aiohttp.TCPConnector(**options)
        session = server.aiohttp_session(**session_kwargs)
        try:
            return await scenario(session)
        finally:
            await session.close()
            # Closed TLS transports finish closing their sockets on later loop turns
            # (aiohttp's advice for a graceful shutdown): let them, before the loop
            # is closed, or their sockets are left to the garbage collector.
            await asyncio.sleep(0.05)

    return asyncio.run(main())


async def fetch(
    session: aiohttp.ClientSession, url: str, method: str = "GET", **kwargs: Any
) -> Result | BaseException:
    """One request, its body read and the response released; a client error is
    returned, not raised."""
    try:
        async with session.request(method, url, **kwargs) as response:
            return Result(response.status, await response.read())
    except aiohttp.ClientError as exc:
        return exc


def visible(hooks: list[str]) -> list[str]:
    """The hooks without the per-header ones."""
    return [h for h in hooks if h != "wrote_header_field"]
