"""``aiohttp.ClientSession`` objects for the local test servers (imports aiohttp
only when called)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp


def session_for(
    base_url: str, context: ssl.SSLContext | None, kwargs: dict[str, Any]
) -> aiohttp.ClientSession:
    """A session with aiohttp's own defaults, except: a connector trusting
    ``context`` (TLS servers), ``trust_env=False``, ``base_url`` the server. A
    ``connector`` passed in is used as is."""
    import aiohttp

    if "connector" not in kwargs and context is not None:
        kwargs["connector"] = aiohttp.TCPConnector(ssl=context)
    kwargs.setdefault("trust_env", False)
    kwargs.setdefault("base_url", base_url)
    return aiohttp.ClientSession(**kwargs)
