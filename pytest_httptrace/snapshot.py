"""Snapshot-ready recordings: a lifecycle as plain data that is equal across runs.

`normalize_requests` (behind `RequestRecord.normalized` and `Recorder.normalized`)
keeps what a lifecycle *is* and drops what changes from run to run:

- kept: method, status, the error's type, the client library's name, how the
  request ended (``outcome``: ``complete``, ``closed_early``, ``failed``) and, on the
  last request its connection served, why that connection closed (``conn_closed``: a
  key of `CONN_CLOSE_REASONS`, None while open), and every hook call in order with
  its meaningful arguments (``reused``, ``was_idle``, the 1xx code and headers, the
  header names and values written, the negotiated protocol, error types);
- renumbered: connections, ``1``, ``2``, ... in order of first use;
- replaced by placeholders: ports (``localhost:<port>``), the addresses dialed
  (``<addr>``: ``localhost`` may resolve to ``::1`` or ``127.0.0.1``),
  version numbers in ``User-Agent`` and ``Server`` (``python-httpx/<version>``),
  ``Date`` header values (``<date>``);
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
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from .recorder import RequestRecord

__all__ = ["normalize_requests"]

_VERSION = re.compile(r"/\d[\w.+-]*")


def _host_port(text: str) -> str:
    """``host:port`` (also ``[::1]:port``) with the port as ``<port>``."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and (host.endswith("]") or ":" not in host):
        return f"{host}:<port>"
    return text


def _url(url: str) -> str:
    """``url`` with the port of its authority as ``<port>``."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{_host_port(hostport)}"))


def _error_type(err: object) -> str | None:
    return None if err is None else type(err).__name__


def _args(hook: str, args: Mapping[str, Any], conn: int | None) -> dict[str, Any]:
    """The meaningful arguments of one hook call, stable across runs."""
    if hook == "get_conn":
        return {"host_port": _host_port(str(args.get("host_port")))}
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
        return {"key": key, "values": [_header_value(key, v) for v in values]}
    if hook == "got_1xx_response":
        return {
            "code": args.get("code"),
            "headers": [
                [str(k), _header_value(str(k), str(v))]
                for k, v in _pairs(args.get("headers"))
            ],
        }
    if hook in ("wrote_request", "put_idle_conn"):
        return {"err": _error_type(args.get("err"))}
    return {}  # tls_handshake_start, wrote_headers, got_first_response_byte, ...


def _header_value(name: str, value: str) -> str:
    """A header value without what changes from run to run."""
    name = name.lower()
    if name in ("host", ":authority"):
        return _host_port(value)
    if name in ("user-agent", "server"):
        return _VERSION.sub("/<version>", value)
    if name == "date":
        return "<date>"
    return value


def _pairs(headers: Any) -> list[tuple[Any, Any]]:
    multi_items = getattr(headers, "multi_items", None)
    if callable(multi_items):
        return list(multi_items())
    items = getattr(headers, "items", None)
    if callable(items):
        return list(items())
    return [tuple(p) for p in headers or () if len(p) == 2]


def _conn_closed(request: RequestRecord) -> str | None:
    """Why the request's connection closed, on the last request it served."""
    from ._ends import closed_connection

    conn = closed_connection(request)
    return None if conn is None else conn.close_reason


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
                "url": _url(request.url),
                "status": request.status,
                "error": _error_type(request.error),
                "source": None if source is None else source.name,
                "connection": conn,
                "outcome": request.outcome,
                "conn_closed": _conn_closed(request),
                "hooks": [
                    {"hook": e.hook, **_args(e.hook, e.args, conn)}
                    for e in request.events
                ],
            }
        )
    return result
