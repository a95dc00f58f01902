"""Hook arguments as text: one convention for timelines, the waterfall and the report.

`shown_args` decides which arguments are worth a reader's attention (the same choice
everywhere); `format_args` renders the plain-data form (`waterfall.request_data`) that
the waterfall and the HTML report draw. The timelines of failure messages render the
recorded objects themselves (`assertions._format`), with `shown_args` choosing what to
show.

Example::

    >>> format_args("got_conn", {"conn": "#1", "reused": True, "was_idle": False,
    ...                          "idle_time": 0.0})
    'conn=#1 reused=True was_idle=False'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["format_args", "shown_args"]


def shown_args(hook: str, args: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The arguments worth showing, in order: the connection object only as its
    number (``"#1"``, in the plain-data form), ``err`` only when set, ``idle_time``
    only for an idle connection, ``coalesced`` only when true."""
    for name, value in args.items():
        if name == "conn" and not (isinstance(value, str) and value.startswith("#")):
            continue
        if name == "err" and value is None:
            continue
        if name == "idle_time" and hook == "got_conn" and not args.get("was_idle"):
            continue
        if name == "coalesced" and value is False:
            continue
        yield name, value


def format_args(hook: str, args: Mapping[str, Any], *, limit: int = 120) -> str:
    """``name=value ...`` for the plain-data arguments of one hook call: the TLS
    state in one line, ``idle_time`` in ms, header lists as ``name: value``, each
    value clipped to ``limit`` characters."""
    from .waterfall import format_ms

    parts = []
    for name, value in shown_args(hook, args):
        if name == "state" and isinstance(value, Mapping):
            parts.append(f"state=({_tls_text(value)})")
        elif name == "idle_time" and isinstance(value, (int, float)):
            parts.append(f"idle_time={format_ms(value)}")
        elif name == "conn":
            parts.append(f"conn={value}")
        else:
            parts.append(f"{name}={_value_text(value, limit)}")
    return " ".join(parts)


def _tls_text(state: Mapping[str, Any]) -> str:
    if not state.get("handshake_complete"):
        return "no handshake"
    bits = [
        str(state.get("version")),
        str(state.get("cipher")),
        f"alpn={state.get('negotiated_protocol')!r}",
        f"server_name={state.get('server_name')!r}",
    ]
    return " ".join(bits)


def _value_text(value: Any, limit: int) -> str:
    text = repr(value) if not isinstance(value, list) or value else "[]"
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        pairs = (tuple(p) for p in value if len(p) == 2)
        text = "[" + ", ".join(f"{k}: {v}" for k, v in pairs) + "]"
    return text if len(text) <= limit else text[: limit - 1] + "…"
