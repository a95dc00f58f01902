"""Small formatting helpers shared by the messages: requests, times, values and hook
calls as text (stable: no memory addresses, long values clipped).
"""

from __future__ import annotations

import os
import re

from .._argtext import shown_args
from ..recorder import Event, RequestRecord
from ..trace import TLSConnectionState

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _req(request: RequestRecord) -> str:
    return f"#{request.id} {request.method} {request.url}"


def _at(request: RequestRecord) -> str:
    return f" (made at {_made_at(request)})" if request.origin else ""


def _made_at(request: RequestRecord) -> str:
    """The user's line (relative), with the libraries in between."""
    where = _origin(request.origin) if request.origin else "?"
    return f"{where} (via {', '.join(request.via)})" if request.via else where


def _ms(t: float | None, t0: float) -> str:
    if t is None:
        return "?"
    return f"{(t - t0) * 1000:.3f} ms"


def _origin(origin: str) -> str:
    """``file:line`` relative to the working directory when it is below it."""
    path, sep, line = origin.rpartition(":")
    if not sep or not line.isdigit() or not os.path.isabs(path):
        return origin
    try:
        relative = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return origin
    return origin if relative.startswith("..") else f"{relative}:{line}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: object, limit: int = 40) -> str:
    """A short, stable repr: no memory addresses, long values clipped."""
    if isinstance(value, TLSConnectionState):
        if not value.handshake_complete:
            text = "<no handshake>"
        else:
            parts = (value.version, value.negotiated_protocol)
            text = "<" + " ".join(str(p) for p in parts if p) + ">"
    elif isinstance(value, float):
        text = repr(round(value, 6))
    elif isinstance(value, (bytes, bytearray)) and len(value) > 16:
        text = f"<{len(value)} bytes>"
    else:
        try:
            text = repr(value)
        except Exception as exc:  # a broken __repr__ must not hide the failure
            text = f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return _clip(_ADDRESS.sub("", text), limit)


def _event_text(event: Event, *, with_request: bool = False) -> str:
    """``hook arg=value ...``: the connection object left out, ``err`` only when
    set, ``idle_time`` only for an idle connection, header fields as ``key: value``."""
    prefix = f"#{event.request.id} " if with_request and event.request else ""
    args = event.args
    if event.hook == "wrote_header_field" and "key" in args:
        values = args.get("values")
        if isinstance(values, (list, tuple)):
            shown = ", ".join(str(v) for v in values)
        else:
            shown = _short(values)
        return prefix + _clip(f"wrote_header_field {args['key']}: {shown}", 70)
    parts: list[str] = [event.hook]
    for name, value in shown_args(event.hook, args):
        if name != "conn":  # the timeline's conn column says which
            parts.append(f"{name}={_short(value)}")
    return prefix + " ".join(parts)


def _got_conn(request: RequestRecord) -> Event | None:
    for e in request.events:
        if e.hook == "got_conn":
            return e
    return None


def _conn_label(request: RequestRecord) -> str:
    if request.connection is not None:
        return f"c{request.connection.id}"
    return "-"
