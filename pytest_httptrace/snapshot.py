"""Snapshot-ready recordings: a lifecycle as plain data that is equal across runs.

`normalize_requests` (behind `RequestRecord.normalized` and `Recorder.normalized`)
keeps what a lifecycle *is* and drops what changes from run to run:

- kept: method, status, the error's type, the client library's name, and every hook
  call in order with its meaningful arguments (``reused``, ``was_idle``, the 1xx
  code and headers, the header names and values written, the negotiated protocol,
  error types);
- renumbered: connections, ``1``, ``2``, ... in order of first use;
- replaced by placeholders: ports (``localhost:<port>``), IP addresses (``<ip>``),
  version numbers in ``User-Agent`` (``python-httpx/<version>``);
- dropped: times, durations (``idle_time``), threads and tasks, resolved addresses
  (``dns_done``'s ``addrs``), TLS ciphers and certificates, library versions.

The result is made of dicts, lists, strings, numbers, booleans and None, so that
inline-snapshot (``assert rec.normalized() == snapshot()``) and syrupy
(``assert rec.normalized() == snapshot``) store and compare it as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .recorder import RequestRecord

__all__ = ["normalize_requests"]

_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]*\]")  # as in URLs and host:port
_PORT = re.compile(r"(?<=[\w\]>]):\d{1,5}\b")
_VERSION = re.compile(r"/\d[\w.+-]*")


def _placeholders(text: str) -> str:
    """``text`` with IP addresses as ``<ip>`` and ports as ``<port>``."""
    text = _IPV6.sub("<ip>", text)
    text = _IPV4.sub("<ip>", text)
    return _PORT.sub(":<port>", text)


def _error_type(err: object) -> str | None:
    return None if err is None else type(err).__name__


def _args(hook: str, args: Mapping[str, Any], conn: int | None) -> dict[str, Any]:
    """The meaningful arguments of one hook call, stable across runs."""
    if hook == "get_conn":
        return {"host_port": _placeholders(str(args.get("host_port")))}
    if hook == "got_conn":
        return {
            "conn": conn,
            "reused": bool(args.get("reused")),
            "was_idle": bool(args.get("was_idle")),
        }
    if hook == "dns_start":
        return {"host": str(args.get("host"))}
    if hook == "dns_done":
        return {"err": _error_type(args.get("err"))}
    if hook == "connect_start":
        return {"network": args.get("network"), "addr": "<addr>"}
    if hook == "connect_done":
        return {
            "network": args.get("network"),
            "addr": "<addr>",
            "err": _error_type(args.get("err")),
        }
    if hook == "tls_handshake_done":
        state = args.get("state")
        return {
            "negotiated_protocol": getattr(state, "negotiated_protocol", None),
            "err": _error_type(args.get("err")),
        }
    if hook == "wrote_header_field":
        key = str(args.get("key"))
        values = [str(v) for v in args.get("values") or ()]
        if key.lower() in ("host", ":authority"):
            values = [_placeholders(v) for v in values]
        elif key.lower() == "user-agent":
            values = [_VERSION.sub("/<version>", v) for v in values]
        return {"key": key, "values": values}
    if hook == "got_1xx_response":
        return {
            "code": args.get("code"),
            "headers": [[str(k), str(v)] for k, v in _pairs(args.get("headers"))],
        }
    if hook in ("wrote_request", "put_idle_conn"):
        return {"err": _error_type(args.get("err"))}
    return {}  # tls_handshake_start, wrote_headers, got_first_response_byte, ...


def _pairs(headers: Any) -> list[tuple[Any, Any]]:
    multi_items = getattr(headers, "multi_items", None)
    if callable(multi_items):
        return list(multi_items())
    items = getattr(headers, "items", None)
    if callable(items):
        return list(items())
    return [tuple(p) for p in headers or () if len(p) == 2]


def normalize_requests(requests: Iterable[RequestRecord]) -> list[dict[str, Any]]:
    """The normalized form of ``requests`` (in the order given); see the module
    docstring. Connections are numbered in order of first use among them."""
    numbers: dict[int, int] = {}
    result: list[dict[str, Any]] = []
    for request in requests:
        conn: int | None = None
        if request.connection is not None:
            conn = numbers.setdefault(request.connection.id, len(numbers) + 1)
        source = request.source
        result.append(
            {
                "method": request.method,
                "url": _placeholders(request.url),
                "status": request.status,
                "error": _error_type(request.error),
                "source": None if source is None else source.name,
                "connection": conn,
                "hooks": [
                    {"hook": e.hook, **_args(e.hook, e.args, conn)}
                    for e in request.events
                ],
            }
        )
    return result
