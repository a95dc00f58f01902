"""HAR 1.2 export: recorded requests as the HTTP Archive that devtools and proxies read.

`har_document` builds one HAR log (a JSON-compatible dict) from tests' requests;
`Recorder.to_har()` and ``pytest --httptrace-har=PATH`` use it. The format is
http://www.softwareishard.com/blog/har-12-spec/ ; what each field holds here:

- ``request``: method, URL, the HTTP version of the connection, the headers as the
  client wrote them on the wire (its ``wrote_header_field`` calls), the body size
  from ``Content-Length`` (``0`` without a body, ``-1`` if unknown).
- ``response``: status (``0`` if there was none), no headers and ``bodySize: -1``
  (the hooks do not see the response's headers or body).
- ``startedDateTime``: wall-clock time, from the monotonic times of the recording
  with one offset (`wall_offset`) taken once per process.
- ``timings`` (milliseconds), mapped from the request's phases in `har_timings`;
  ``time`` is their sum (``ssl`` is part of ``connect``, so not counted twice).
- ``serverIPAddress``, ``connection`` (the client's local port, else the
  recorder's connection number: the same value on two entries of a test means the
  second reused the connection).
- custom fields (``_``-prefixed, allowed by the spec): ``_reused``, ``_wasIdle``,
  ``_idleTime``, ``_informational`` (1xx responses), ``_leaked``, ``_incomplete``,
  ``_error``, ``_test`` (the node id), ``_phase``, ``_source`` (the client library),
  ``_connectionId`` (the recorder's connection number), ``_origin``.

Example::

    with Recorder.start() as rec:
        with httpx.Client() as client:
            client.get(url)
    Path("requests.har").write_text(json.dumps(rec.to_har()))
"""

from __future__ import annotations

import datetime
import http
import ipaddress
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ._version import __version__
from .waterfall import RequestData, is_leaked, request_bounds, request_data

if TYPE_CHECKING:
    from .recorder import RequestRecord

__all__ = [
    "har_document",
    "har_entry",
    "har_log",
    "har_timings",
    "wall_offset",
    "write_har",
]

#: A test's requests: (node id or None, requests as plain data or records).
HarTest = tuple["str | None", Sequence["RequestData | RequestRecord"]]

_OFFSET: float | None = None


def wall_offset() -> float:
    """Seconds to add to a monotonic time to get wall-clock (epoch) time.

    Taken once per process, at first use, so that every entry of a recording is
    shifted by the same amount (their order and gaps stay exactly as recorded).
    """
    global _OFFSET
    if _OFFSET is None:
        _OFFSET = time.time() - time.monotonic()
    return _OFFSET


def har_timings(request: RequestData) -> dict[str, float]:
    """The HAR ``timings`` of ``request`` in milliseconds, from its hook calls.

    From the phases (`pytest_httptrace.phases`): ``blocked`` (the wait for a
    pooled connection), ``dns``; ``connect``: the first ``connect_start`` to the end
    of the TLS handshake (the spec counts ``ssl`` in ``connect``); ``ssl`` (``tls``);
    ``send``, ``wait``, ``receive``. ``-1``: the phase did not happen (a reused
    connection has no ``dns``, ``connect`` or ``ssl``); ``send``, ``wait`` and
    ``receive`` are never ``-1`` (the spec requires them), but ``0``.

    This is the one place where our phases become HAR's.
    """
    from ._phases import phases  # the phases, defined once

    spans = phases(request)

    def total(name: str) -> float | None:
        durations = [s.duration for s in spans if s.name == name]
        return sum(durations) if durations else None

    connects = [s for s in spans if s.name in ("connect", "tls")]
    connect: float | None = None
    if any(s.name == "connect" for s in connects):
        connect = max(s.end for s in connects) - min(
            s.start for s in connects if s.name == "connect"
        )
    ssl = total("tls")
    if connect is None and ssl is not None:
        connect = ssl  # TLS over a connection the hooks did not see dialed

    def ms(seconds: float | None, absent: float) -> float:
        if seconds is None:
            return absent
        return round(max(seconds, 0.0) * 1000.0, 3)

    return {
        "blocked": ms(total("blocked"), -1),
        "dns": ms(total("dns"), -1),
        "connect": ms(connect, -1),
        "ssl": ms(ssl, -1),
        "send": ms(total("send"), 0),
        "wait": ms(total("wait"), 0),
        "receive": ms(total("receive"), 0),
    }


def har_entry(
    request: RequestData | RequestRecord,
    *,
    offset: float | None = None,
    test: str | None = None,
) -> dict[str, Any]:
    """One HAR entry for ``request`` (a record or its `request_data` form).

    ``offset`` turns monotonic times into epoch seconds (default `wall_offset`);
    ``test`` is the page (node id) the entry belongs to, if any.
    """
    data = request if isinstance(request, dict) else request_data(request)
    if offset is None:
        offset = wall_offset()
    events = data["events"]
    conn = data["connection"]
    version = _http_version(None if conn is None else conn["protocol"])
    headers = [
        {"name": str(e["args"].get("key", "")), "value": str(value)}
        for e in events
        if e["hook"] == "wrote_header_field"
        for value in e["args"].get("values") or [""]
    ]
    timings = har_timings(data)
    status = data["status"]
    start, _ = request_bounds(data)
    started = datetime.datetime.fromtimestamp(start + offset, tz=datetime.timezone.utc)
    entry: dict[str, Any] = {
        "startedDateTime": started.isoformat(timespec="milliseconds"),
        "time": round(sum(v for k, v in timings.items() if k != "ssl" and v > 0), 3),
        "request": {
            "method": data["method"],
            "url": data["url"],
            "httpVersion": version,
            "cookies": [],
            "headers": headers,
            "queryString": [
                {"name": k, "value": v}
                for k, v in parse_qsl(urlsplit(data["url"]).query, True)
            ],
            "headersSize": -1,
            "bodySize": _body_size(data["method"], headers),
        },
        "response": {
            "status": 0 if status is None else status,
            "statusText": _reason(status),
            "httpVersion": version if status is not None else "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": timings,
    }
    if test is not None:
        entry["pageref"] = test
    server_ip = _ip(None if conn is None else conn["peer_addr"])
    if server_ip is not None:
        entry["serverIPAddress"] = server_ip
    if conn is not None:
        port = _port(conn["local_addr"])
        # The client's port where known (haralyzer reads this field as a port),
        # else the recorder's connection number: either way, one value per
        # connection, so reuse is visible in any viewer.
        entry["connection"] = port if port is not None else str(conn["id"])
        entry["_connectionId"] = conn["id"]
    got_conn = next((e for e in events if e["hook"] == "got_conn"), None)
    if got_conn is not None:
        args = got_conn["args"]
        entry["_reused"] = bool(args.get("reused"))
        entry["_wasIdle"] = bool(args.get("was_idle"))
        idle = args.get("idle_time")
        seconds = idle if isinstance(idle, (int, float)) else 0
        entry["_idleTime"] = round(float(seconds) * 1000.0, 3)
    entry["_informational"] = [
        {
            "status": e["args"].get("code"),
            "headers": [
                {"name": str(k), "value": str(v)}
                for k, v in _pairs(e["args"].get("headers"))
            ],
        }
        for e in events
        if e["hook"] == "got_1xx_response"
    ]
    entry["_leaked"] = is_leaked(data)
    # Never completed: no response, an error, or a response never closed (a leak).
    entry["_incomplete"] = (
        status is None or data["error"] is not None or data["closed_at"] is None
    )
    if data["error"] is not None:
        entry["_error"] = str(data["error"])
    entry["_test"] = test
    entry["_phase"] = data["phase"]
    entry["_source"] = data["source"]
    entry["_origin"] = data["origin"]
    return entry


def har_document(tests: Iterable[HarTest]) -> dict[str, Any]:
    """A HAR 1.2 log of ``tests``: one page per named test, one entry per request."""
    offset = wall_offset()
    return har_log(
        (name, [har_entry(r, offset=offset, test=name) for r in requests])
        for name, requests in tests
    )


def har_log(
    tests: Iterable[tuple[str | None, Sequence[dict[str, Any]]]],
) -> dict[str, Any]:
    """A HAR 1.2 log of entries already built (`har_entry`), grouped by test: one
    page per named test, entries sorted by start time."""
    pages: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for name, test_entries in tests:
        entries.extend(test_entries)
        if name is not None and test_entries:
            pages.append(
                {
                    "startedDateTime": min(e["startedDateTime"] for e in test_entries),
                    "id": name,
                    "title": name,
                    "pageTimings": {},
                }
            )
    entries.sort(key=lambda e: str(e["startedDateTime"]))
    pages.sort(key=lambda p: str(p["startedDateTime"]))
    log: dict[str, Any] = {
        "version": "1.2",
        "creator": {"name": "pytest-httptrace", "version": __version__},
    }
    if pages:
        log["pages"] = pages
    log["entries"] = entries
    return {"log": log}


def write_har(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write ``document`` as JSON to ``path`` (its directory is created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, allow_nan=False)
        f.write("\n")
    return target


def _http_version(protocol: str | None) -> str:
    if protocol is None:
        return ""
    return "HTTP/2.0" if protocol == "HTTP/2" else protocol


def _reason(status: int | None) -> str:
    if status is None:
        return ""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _body_size(method: str, headers: list[dict[str, str]]) -> int:
    """From the request's ``Content-Length``; ``0`` without one (and without
    ``Transfer-Encoding``); ``-1`` for a chunked body of unknown size."""
    names = {h["name"].lower(): h["value"] for h in headers}
    length = names.get("content-length")
    if length is not None and length.strip().isdigit():
        return int(length)
    if "transfer-encoding" in names or (not headers and method not in ("GET", "HEAD")):
        return -1
    return 0


def _host_port(addr: str | None) -> tuple[str, str] | None:
    if not addr:
        return None
    host, sep, port = addr.rpartition(":")
    if not sep:
        return None
    return host.strip("[]"), port


def _ip(addr: str | None) -> str | None:
    parts = _host_port(addr)
    if parts is None:
        return None
    try:
        return str(ipaddress.ip_address(parts[0]))
    except ValueError:
        return None


def _port(addr: str | None) -> str | None:
    parts = _host_port(addr)
    return parts[1] if parts is not None and parts[1].isdigit() else None


def _pairs(headers: Any) -> list[tuple[Any, Any]]:
    """``[[name, value], ...]`` (the plain form of a header collection) as pairs."""
    if isinstance(headers, list):
        return [tuple(p) for p in headers if isinstance(p, list) and len(p) == 2]
    return []
