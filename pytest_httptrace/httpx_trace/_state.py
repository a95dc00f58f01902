"""Per-request state of the httpx source, and the registries shared by its parts."""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..trace import HeaderFields, TracedConnection, TracedRequest

if TYPE_CHECKING:
    from ._flavour import Flavour


class RequestState:
    """What the httpx source knows of one request beyond the model's fields."""

    __slots__ = (
        "attempt_returned_at",
        "await_first_byte",
        "body_read",
        "body_withheld",
        "conn",
        "deferred",
        "expect_continue",
        "first_byte",
        "flavour",
        "fresh",
        "got_100",
        "got_conn",
        "h2_body",
        "h2_written",
        "hold_body",
        "host_port",
        "pending_headers",
        "proxied",
        "request",
        "wrote_request",
    )

    def __init__(self, flavour: Flavour) -> None:
        self.flavour = flavour
        #: httpcore's request (with its body) while in flight; dropped at close.
        self.request: Any = None
        #: The connection the pool handed us, before we know the dial succeeded.
        self.conn: TracedConnection | None = None
        #: When this attempt's own transport call returned or raised.
        self.attempt_returned_at: float | None = None
        self.proxied = False
        self.fresh = False  # the connection had not dialed yet when bound
        self.expect_continue = False
        self.host_port = ""  # get_conn's argument
        self.on_a_connection()

    def on_a_connection(self) -> None:
        """What belongs to the request's use of one connection (the hooks fired on
        it, the body read from it), as for a new request: set here, and again when
        the pool sends the request once more, on another connection."""
        self.got_conn = False
        self.first_byte = False
        self.await_first_byte = False
        self.got_100 = False
        self.hold_body = False
        self.body_withheld = False
        self.wrote_request = False
        self.body_read = False  # the response body was read to its end
        self.h2_body = False
        self.h2_written = False
        self.deferred: list[Callable[[TracedRequest], None]] = []
        self.pending_headers: HeaderFields = []


def state(st: TracedRequest) -> RequestState:
    """The httpx state of ``st``."""
    result: RequestState = st.state
    return result


#: The request being sent by this context (set by the transport wrapper).
CURRENT: contextvars.ContextVar[TracedRequest | None] = contextvars.ContextVar(
    "pytest_httptrace_current", default=None
)
#: The requests started by the current ``Client.send`` call (redirects, retries).
CALL: contextvars.ContextVar[list[TracedRequest] | None] = contextvars.ContextVar(
    "pytest_httptrace_call", default=None
)

lock = threading.Lock()
_conn_ids = iter(range(1, 1 << 62))
#: httpcore HTTPConnection (outer) or HTTP11/HTTP2 connection (inner) -> its record.
CONNS: weakref.WeakKeyDictionary[object, TracedConnection] = weakref.WeakKeyDictionary()
#: HTTP/2 connection (inner) -> {stream id: request}.
H2_STREAMS: weakref.WeakKeyDictionary[object, dict[int, TracedRequest]] = (
    weakref.WeakKeyDictionary()
)
#: Its underlying dict, whose truth the HTTP/2 read wrappers test first: empty unless
#: a traced request has a stream on a live connection (the mapping's own lookup is
#: a Python call, on every read of every connection).
H2_STREAMS_PENDING: dict[Any, dict[int, TracedRequest]] = H2_STREAMS.data  # type: ignore[attr-defined]
#: Network stream -> bytes read ahead while waiting for 100 Continue, served to
#: httpcore's next reads before the socket (so h11 parses them as usual).
PUSHBACK: weakref.WeakKeyDictionary[object, bytes] = weakref.WeakKeyDictionary()
#: Its underlying dict, whose truth the read taps test on every read (the mapping's
#: own ``__len__`` is a Python call): empty unless the waiting mode read ahead.
PUSHBACK_PENDING: dict[Any, bytes] = PUSHBACK.data  # type: ignore[attr-defined]

now = time.monotonic


def connection_record(conn: object) -> TracedConnection:
    """The one record of httpcore connection ``conn``."""
    with lock:
        record = CONNS.get(conn)
        if record is None:
            record = TracedConnection.of(conn, id=next(_conn_ids))
            CONNS[conn] = record
        return record


#: Per flavour: transports (by qualified name) that answered a traced call
#: without reaching httpcore's pool (ASGI/WSGI/mock transports, a mocking
#: library), with how many calls; cleared when tracing starts.
BYPASSED: dict[str, dict[str, int]] = {}


def note_bypass(flavour: Flavour, transport: object) -> None:
    kind = type(transport)
    name = f"{kind.__module__}.{kind.__qualname__}"
    seen = BYPASSED.setdefault(flavour.name, {})
    with lock:
        seen[name] = seen.get(name, 0) + 1
