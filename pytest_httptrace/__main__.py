"""`httptrace` (`python -m pytest_httptrace`): a request's lifecycle in the terminal.

Like httpstat, but drawn from the real `ClientTrace` hooks that httpx drove::

    httptrace                                   # the tour, on a local TLS server
    httptrace https://example.org/ --http2
    httptrace https://api.example/items --data '{"n": 1}' \\
        --header 'Content-Type: application/json'
    httptrace https://example.org/ --json       # the hook calls, machine-readable

Each request gets a waterfall (DNS, connect, TLS, send, wait for the first byte,
transfer; a reused connection skips the first three) and, under it, every hook call
with its arguments. Certificate verification is never turned off: trust a private CA
with ``--cacert``. Exit status: 0 when every request got a response (whatever its
status code), 1 when one failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ._version import __version__
from .recorder import Recorder
from .server import HTTPX_LIBRARIES, client_library
from .waterfall import (
    RequestData,
    render_waterfall,
    request_bounds,
    request_data,
    request_spans,
    shift_times,
)

if TYPE_CHECKING:
    import httpx
else:
    httpx = None  # the client library, chosen in main() (--lib): httpx or httpx2

if TYPE_CHECKING:
    from .server import TestServer

__all__ = ["main"]

#: Version of the ``--json`` document layout.
JSON_FORMAT = 1


# -- output --------------------------------------------------------------------------


@dataclass
class _Group:
    """Requests shown together on one time axis, under a title."""

    title: str
    note: str
    requests: list[RequestData]


class _Output:
    """Writes groups as text (waterfalls) or collects them for one JSON document."""

    def __init__(self, stream: TextIO, *, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.groups: list[_Group] = []
        self.width = max(60, min(120, shutil.get_terminal_size((100, 24)).columns))
        self.color = (
            not as_json
            and stream.isatty()
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
        )
        self.unicode = _can_encode(stream, "█│→—·━")

    def text(self, line: str = "") -> None:
        if not self.as_json:
            self.stream.write(line + "\n")

    def heading(self, title: str) -> None:
        rule = "━" if self.unicode else "="
        line = f"{rule * 2} {title} "
        self.text(line + rule * max(3, self.width - len(line)))
        self.text()

    def group(self, group: _Group) -> None:
        self.groups.append(group)
        if self.as_json:
            return
        if group.title:
            self.heading(group.title)
        if group.note:
            for paragraph in group.note.split("\n"):
                self.text(_wrap(paragraph, self.width))
            self.text()
        self.stream.write(
            render_waterfall(
                group.requests,
                width=self.width,
                color=self.color,
                unicode=self.unicode,
            )
        )
        self.text()

    def finish(self, error: str | None) -> None:
        if not self.as_json:
            return
        all_requests = [r for g in self.groups for r in g.requests]
        origin = min((request_bounds(r)[0] for r in all_requests), default=0.0)
        document = {
            "format": JSON_FORMAT,
            "generator": f"pytest-httptrace {__version__}",
            "time_unit": "seconds since the first request started",
            "groups": [
                {
                    "title": g.title,
                    "note": g.note,
                    "requests": [_json_request(r, origin) for r in g.requests],
                }
                for g in self.groups
            ],
            "error": error,
        }
        json.dump(document, self.stream, indent=2, allow_nan=False)
        self.stream.write("\n")


def _json_request(request: RequestData, origin: float) -> dict[str, Any]:
    shifted = shift_times(request, origin)
    spans = [
        {"name": s.name, "start": s.start, "end": s.end} for s in request_spans(shifted)
    ]
    return {**shifted, "spans": spans}


def _can_encode(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _wrap(text: str, width: int) -> str:
    import textwrap

    return textwrap.fill(text, width=width) if text else ""


# -- errors --------------------------------------------------------------------------


def _request_errors() -> tuple[type[BaseException], ...]:
    """What a failed request raises that is the user's input or the network, not a
    bug."""
    return (httpx.HTTPError, httpx.InvalidURL, OSError, ssl.SSLError)


def _describe(error: BaseException) -> str:
    message = str(error) or repr(error)
    text = f"{type(error).__name__}: {message}"
    hint = _hint(error)
    return f"{text}\nhint: {hint}" if hint else text


def _hint(error: BaseException) -> str:
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(e) for e in chain)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "the server's certificate is not trusted. If it comes from a private CA, "
            "pass --cacert FILE (certificate verification is never turned off)."
        )
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve (see dns_done's err above)."
    if "Connection refused" in text:
        return "nothing listens on that address and port (see connect_done above)."
    if isinstance(error, httpx.TimeoutException):
        return "no answer in time; --timeout SECONDS waits longer."
    return ""


# -- tracing one URL -----------------------------------------------------------------


def _parse_headers(parser: argparse.ArgumentParser, raw: Sequence[str]) -> list[Any]:
    headers = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            parser.error(f"--header needs 'Name: value', got {item!r}")
        headers.append((name.strip(), value.strip()))
    return headers


def _body(parser: argparse.ArgumentParser, data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        try:
            with open(data[1:], "rb") as f:
                return f.read()
        except OSError as exc:
            parser.error(f"--data {data}: cannot read the file: {exc}")
    return data.encode()


def _trace_url(
    args: argparse.Namespace, parser: argparse.ArgumentParser, out: _Output
) -> int:
    url: str = args.url
    if "://" not in url:
        parser.error(f"the URL needs a scheme: did you mean https://{url} ?")
    headers = _parse_headers(parser, args.header)
    content = _body(parser, args.data)
    method = (args.method or ("POST" if content is not None else "GET")).upper()
    verify: ssl.SSLContext | bool = True
    if args.cacert:
        try:
            verify = ssl.create_default_context(cafile=args.cacert)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"--cacert {args.cacert}: {exc}")

    error: BaseException | None = None
    with Recorder.start() as recorder:
        try:
            with httpx.Client(
                http2=args.http2, verify=verify, timeout=args.timeout
            ) as client:
                for _ in range(args.repeat):
                    client.request(method, url, headers=headers, content=content)
        except _request_errors() as exc:
            error = exc
    requests = [request_data(r) for r in recorder.all_requests]
    title = f"{method} {url}" + (f" (x{args.repeat})" if args.repeat > 1 else "")
    if requests or error is None:
        out.group(_Group(title=title, note="", requests=requests))
    if error is not None:
        description = _describe(error)
        if not requests:
            out.text(f"no request was sent, so no hook ran: {description}")
        elif requests[-1]["error"] == description.partition("\n")[0]:
            hint = description.partition("\n")[2]  # the error is shown above
            if hint:
                out.text(hint)
        else:
            out.text(f"error: {description}")
        out.finish(description)
        return 1
    out.finish(None)
    return 0


# -- the tour ------------------------------------------------------------------------


@dataclass
class _Step:
    title: str
    note: str
    run: Callable[[TestServer], None]


def _tour_steps() -> list[_Step]:
    from . import wait_for_100_continue

    shared: dict[str, httpx.Client] = {}

    def h1_client(server: TestServer) -> httpx.Client:
        if "h1" not in shared:
            shared["h1"] = server.client(lib=httpx.__name__)
        return shared["h1"]

    def cold(server: TestServer) -> None:
        h1_client(server).get("/")

    def reused(server: TestServer) -> None:
        h1_client(server).get("/")

    def concurrent(server: TestServer) -> None:
        async def two_streams() -> None:
            # anyio imports its asyncio backend on first use (~20 ms): do it before
            # the requests, so that the waterfall shows the network, not an import.
            import anyio

            await anyio.sleep(0)
            async with server.async_client(lib=httpx.__name__, http2=True) as client:
                await asyncio.gather(
                    client.get("/delay/0.05"), client.get("/delay/0.05")
                )

        asyncio.run(two_streams())

    body = b"x" * 16 * 1024
    expect = {"Expect": "100-continue"}

    def upload(server: TestServer) -> None:
        h1_client(server).post("/echo", content=body, headers=expect)
        shared.pop("h1").close()

    def upload_waiting(server: TestServer) -> None:
        with (
            server.client(lib=httpx.__name__) as client,
            wait_for_100_continue(timeout=1.0),
        ):
            client.post("/echo", content=body, headers=expect)

    def early_hints(server: TestServer) -> None:
        with server.client(lib=httpx.__name__, http2=True) as client:
            client.get("/early-hints")

    return [
        _Step(
            "1. A cold request",
            "A new httpx.Client owns no connection yet: get_conn, then DNS, connect "
            "and the TLS handshake, then got_conn(reused=False). After the response "
            "is read, put_idle_conn returns the connection to the pool.",
            cold,
        ),
        _Step(
            "2. The same client again: a reused connection",
            "got_conn(reused=True, was_idle=True): the connection of request 1 comes "
            "back from the idle pool. No DNS, no connect, no TLS.",
            reused,
        ),
        _Step(
            "3. Two concurrent HTTP/2 streams on one connection",
            "Two tasks of one AsyncClient(http2=True) send at once. One dials; the "
            "other gets the same connection (reused=True, was_idle=False: it is in "
            "use) and both wait on the server's 50 ms at the same time. An HTTP/2 "
            "connection is never put back idle: no put_idle_conn, as in Go.",
            concurrent,
        ),
        _Step(
            "4. An upload with Expect: 100-continue (stock httpx)",
            "Stock httpx does not wait for 100 Continue: it writes the body right "
            "after the headers (wrote_request comes before got_100_continue) and "
            "wait_100_continue never runs. The server's 100 Continue still arrives: "
            "got_100_continue and got_1xx_response(100).",
            upload,
        ),
        _Step(
            "5. The same upload in the opt-in waiting mode",
            "Inside pytest_httptrace.wait_for_100_continue() (which changes what "
            "httpx does on the wire, to behave like Go's client) the body is held: "
            "wrote_headers, wait_100_continue, got_100_continue, then wrote_request.",
            upload_waiting,
        ),
        _Step(
            "6. Early hints (103) over HTTP/2",
            "The first response byte is the 103: got_first_response_byte, then "
            "got_1xx_response(103, headers with the Link), then the final 200.",
            early_hints,
        ),
    ]


def _tour(out: _Output) -> int:
    from .server import start_server

    steps = _tour_steps()
    failures = 0
    with start_server() as server:
        out.text(
            f"httptrace {__version__}: a tour of Go's httptrace hooks on "
            f"{httpx.__name__} {httpx.__version__}"
        )
        out.text(
            f"against a local TLS test server at {server.url('/')} (HTTP/1.1 and "
            "HTTP/2 by ALPN, certificate from a throwaway trustme CA)."
        )
        out.text()
        with Recorder.start() as recorder:
            for step in steps:
                before = len(recorder.all_requests)
                error: BaseException | None = None
                try:
                    step.run(server)
                except _request_errors() as exc:
                    error = exc
                    failures += 1
                requests = [request_data(r) for r in recorder.all_requests[before:]]
                out.group(_Group(title=step.title, note=step.note, requests=requests))
                if error is not None:
                    out.text(f"error: {_describe(error)}")
                    out.text()
        connections = {
            r.connection.id for r in recorder.all_requests if r.connection is not None
        }
        total = len(recorder.all_requests)
    out.text(
        f"{total} requests on {len(connections)} connections. Next: trace your own "
        "URL with `httptrace https://example.org/ --http2`; in tests, use the "
        "httptrace_recorder fixture; for a whole run, "
        "`pytest --httptrace-report=trace` writes trace.json (Perfetto) and "
        "trace.html."
    )
    out.finish("a tour step failed" if failures else None)
    return 1 if failures else 0


# -- entry point ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="httptrace",
        description=(
            "Trace httpx requests with Go's httptrace hooks and show each request's "
            "lifecycle: a waterfall (DNS, connect, TLS, send, wait, transfer) and "
            "every hook call with its arguments. Without a URL: a tour against a "
            "local TLS test server (no network needed)."
        ),
    )
    parser.add_argument("url", nargs="?", help="the URL to request (with its scheme)")
    parser.add_argument(
        "--http2", action="store_true", help="offer HTTP/2 (by ALPN) as well"
    )
    parser.add_argument(
        "-X", "--method", help="the request method (default GET, or POST with --data)"
    )
    parser.add_argument(
        "-d", "--data", help="the request body; @FILE reads it from a file"
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the recorded requests and hook calls as one JSON document",
    )
    parser.add_argument(
        "--cacert",
        metavar="FILE",
        help="trust this CA bundle (PEM) instead of the default ones; verification "
        "is never disabled",
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="send the request N times on one client, to see connection reuse",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="httpx timeout for connect, read, write and pool (default 10)",
    )
    parser.add_argument(
        "--lib",
        choices=HTTPX_LIBRARIES,
        default=None,
        help="the client library: httpx or httpx2 (default httpx, or httpx2 where "
        "httpx is not installed)",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 a request failed, 2 usage)."""
    global httpx
    parser = build_parser()
    args = parser.parse_args(argv)
    httpx = client_library(args.lib)
    out = _Output(sys.stdout, as_json=args.json)
    if args.url is None:
        extra = [
            name
            for name, given in (
                ("--http2", args.http2),
                ("--method", args.method),
                ("--data", args.data),
                ("--header", args.header),
                ("--cacert", args.cacert),
                ("--repeat", args.repeat != 1),
            )
            if given
        ]
        if extra == ["--http2"]:
            parser.error(
                "--http2 needs a URL: `httptrace URL --http2` offers HTTP/2 to that "
                "server. The tour takes no options: it already shows HTTP/2 (steps 3 "
                "and 6: two streams on one connection, early hints); run `httptrace` "
                "alone to see them."
            )
        if extra:
            verb = "needs" if len(extra) == 1 else "need"
            parser.error(
                f"{', '.join(extra)} {verb} a URL (the tour takes no options): "
                f"httptrace URL {' '.join(extra)} ..."
            )
    try:
        if args.url is None:
            return _tour(out)
        return _trace_url(args, parser, out)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # `httptrace | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error at interpreter exit
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
