"""Per-request state shared by the aiohttp instrumentation, and the maps that tie
aiohttp's objects (request, connection protocol) to the request being traced."""

from __future__ import annotations

import contextvars
import functools
import threading
import time
import weakref
from typing import Any

import aiohttp

from .. import trace as _trace
from ..sources import SourceInfo
from ..trace import TracedConnection, TracedRequest


class AiohttpRequestAbortedByHook(_trace.RequestAbortedByHook, aiohttp.ClientError):
    """`pytest_httptrace.RequestAbortedByHook` as an ``aiohttp.ClientError``."""


class _State:
    """The aiohttp source's per-request (per attempt) state."""

    __slots__ = (
        "body_withheld",
        "dialed",
        "expect_continue",
        "fail",
        "got_100",
        "got_conn",
        "payload",
        "proxied",
        "tls",
        "tls_started",
        "wrote_request",
    )

    def __init__(self) -> None:
        self.proxied = False
        self.tls = False
        """This attempt dials TLS (an https URL): the handshake follows the connect."""
        self.tls_started = False
        self.dialed: Any = None
        """A weak reference to the protocol this attempt dialed (None: none)."""
        self.got_conn = False
        self.expect_continue = False
        self.got_100 = False
        self.body_withheld = False
        """A final response came before ``100 Continue``: the body is never sent."""
        self.wrote_request = False
        self.payload: Any = None
        """The final response's body stream (``StreamReader``), once its head is read:
        whether it was read to its end, or broke off with an error."""
        self.fail: BaseException | None = None
        """Why this attempt failed, where that is known before its end is reported
        (released before a response head; a hook error the call will raise)."""


class _Slot:
    """What a context variable of ours holds: a box emptied when its scope ends.

    asyncio copies the context into everything started inside a scope: the tasks
    of a lookup or a dial, and the transport callbacks of a new connection, which
    live as long as the connection. Emptying the box at the end of the scope keeps
    those copies from holding the request (and its recorder) or from seeing it
    later.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


#: The requests started by the current ``ClientSession._request`` call (one per
#: attempt: redirects, aiohttp's retry of a stale keep-alive connection): a
#: `_Slot` of a list, emptied (None) when the call returns.
_CALL: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar(
    "pytest_httptrace_aiohttp_call", default=None
)
#: The attempt whose connection is being obtained in this context (set by the
#: connector wrapper; the DNS lookup, the dial tasks and the TLS handshake see it):
#: a `_Slot` of the request, emptied when ``connect`` returns.
_DIAL: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar(
    "pytest_httptrace_aiohttp_dial", default=None
)


def _dialing() -> TracedRequest | None:
    """The attempt dialing in this context, if any."""
    slot = _DIAL.get()
    return None if slot is None else slot.value


_lock = threading.Lock()
_conn_ids = iter(range(1, 1 << 62))

#: aiohttp ``ResponseHandler`` (the connection: one per socket) -> its record.
_CONNS: weakref.WeakKeyDictionary[object, TracedConnection] = (
    weakref.WeakKeyDictionary()
)
#: ``ResponseHandler`` -> the attempt using it now (from got_conn to its release).
_ACTIVE: weakref.WeakKeyDictionary[object, TracedRequest] = weakref.WeakKeyDictionary()
#: ``ResponseHandler`` -> the attempt that waits for its first response byte.
_READING: weakref.WeakKeyDictionary[object, TracedRequest] = weakref.WeakKeyDictionary()
#: ``ResponseHandler`` whose TLS handshake is running -> the attempt dialing it.
_HANDSHAKING: weakref.WeakKeyDictionary[object, TracedRequest] = (
    weakref.WeakKeyDictionary()
)
#: ``ClientRequest`` -> its attempt (the body writer task finds it there).
_BY_REQUEST: weakref.WeakKeyDictionary[object, TracedRequest] = (
    weakref.WeakKeyDictionary()
)


#: The clock of every record (aiohttp's pool stamps idle connections with it too).
_now = time.monotonic


def _connection_record(proto: object) -> TracedConnection:
    with _lock:
        record = _CONNS.get(proto)
        if record is None:
            record = TracedConnection.of(proto, id=next(_conn_ids), protocol="HTTP/1.1")
            _CONNS[proto] = record
        return record


def _canceled(what: str) -> ConnectionAbortedError:
    """The error a hook's ``done`` call gets when the task was cancelled in the
    middle (Go: "operation was canceled")."""
    return ConnectionAbortedError(f"{what} canceled")


@functools.cache
def _source_info() -> SourceInfo:
    return SourceInfo(name="aiohttp", library="aiohttp", version=aiohttp.__version__)
