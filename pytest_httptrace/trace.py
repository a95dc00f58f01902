"""The trace model: Go's ``net/http/httptrace.ClientTrace`` for Python.

This module knows nothing about httpx. It defines the hooks (`ClientTrace`), their
argument types, how a trace is attached to the current context
(`with_client_trace` / `context_client_trace`), and `TracedRequest`: the per-request
object through which an instrumentation *source* (see ``httpx_trace``) fires hooks.

Example::

    seen = []
    trace = ClientTrace(got_conn=lambda info: seen.append(info.reused))
    with with_client_trace(trace):
        client.get(url)
        client.get(url)
    assert seen == [False, True]
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import itertools
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

if TYPE_CHECKING:
    from .sources import SourceInfo

__all__ = [
    "CONN_CLOSE_REASONS",
    "END_HOOK_NAMES",
    "HOOK_ARGS",
    "HOOK_NAMES",
    "BodyClosedInfo",
    "ClientTrace",
    "ConnClosedInfo",
    "DNSDoneInfo",
    "DNSStartInfo",
    "EndHookName",
    "GotConnInfo",
    "HookName",
    "RequestAbortedByHook",
    "RequestDoneInfo",
    "TLSConnectionState",
    "TracedConnection",
    "TracedRequest",
    "WroteRequestInfo",
    "context_client_trace",
    "with_client_trace",
]

HookName = Literal[
    "get_conn",
    "got_conn",
    "put_idle_conn",
    "got_first_response_byte",
    "got_100_continue",
    "got_1xx_response",
    "dns_start",
    "dns_done",
    "connect_start",
    "connect_done",
    "tls_handshake_start",
    "tls_handshake_done",
    "wrote_header_field",
    "wrote_headers",
    "wait_100_continue",
    "wrote_request",
]

#: Every hook name, in the order of Go's ``ClientTrace`` struct.
HOOK_NAMES: tuple[HookName, ...] = get_args(HookName)

EndHookName = Literal["body_closed", "request_done", "conn_closed"]

#: Hooks of ours, beyond Go's (which declined them: golang/go#16400): how a request
#: and a connection *ended*. Attachable on a `ClientTrace` like Go's; the recorder
#: does not subscribe to them but derives them, when read, from what the source
#: kept on the request and connection (``RequestRecord.ends``), so they cost a
#: recording nothing.
END_HOOK_NAMES: tuple[EndHookName, ...] = get_args(EndHookName)

#: Go's hooks and ours: every field of `ClientTrace`.
ALL_HOOK_NAMES: tuple[HookName | EndHookName, ...] = HOOK_NAMES + END_HOOK_NAMES
_HOOK_SET = frozenset(ALL_HOOK_NAMES)
_GO_HOOKS = frozenset(HOOK_NAMES)

RequestOutcome = Literal["complete", "closed_early", "failed"]

#: Why a connection was closed (`ConnClosedInfo.reason`), with what each means.
CONN_CLOSE_REASONS: dict[str, str] = {
    "client": "the client closed it: it could not keep it after the response (a "
    "body not read to the end, an aborted, cancelled or timed-out request) or keeps "
    "none (keep-alive turned off)",
    "server": "the server closed it cleanly or asked to (Connection: close, GOAWAY, "
    "the end of the stream before or between responses)",
    "idle_expired": "it sat idle in the pool past the client's keep-alive expiry",
    "pool_full": "the pool discarded it: too many idle connections",
    "protocol_error": "an error on it: a reset, a malformed or truncated response, "
    "a failed read or write (the error is given)",
    "client_closed": "the client (or its pool) was closed",
}
ConnCloseReason = Literal[
    "client", "server", "idle_expired", "pool_full", "protocol_error", "client_closed"
]

#: The names of each hook's arguments as they appear in ``Event.args``: Go's names in
#: snake_case. Hooks that take one info struct in Go list that struct's fields, since
#: the recorder flattens it (``hook("got_conn", reused=True)``).
HOOK_ARGS: dict[str, tuple[str, ...]] = {
    "get_conn": ("host_port",),
    "got_conn": ("conn", "reused", "was_idle", "idle_time"),
    "put_idle_conn": ("err",),
    "got_first_response_byte": (),
    "got_100_continue": (),
    "got_1xx_response": ("code", "headers"),
    "dns_start": ("host",),
    "dns_done": ("addrs", "err", "coalesced"),
    "connect_start": ("network", "addr"),
    "connect_done": ("network", "addr", "err"),
    "tls_handshake_start": (),
    "tls_handshake_done": ("state", "err"),
    "wrote_header_field": ("key", "values"),
    "wrote_headers": (),
    "wait_100_continue": (),
    "wrote_request": ("err",),
    # ours (END_HOOK_NAMES)
    "body_closed": ("read_to_end", "err"),
    "request_done": ("outcome", "err"),
    "conn_closed": ("conn", "reason", "err"),
}


#: One header field as a source has it: bytes as on the wire (read as latin-1), or
#: the client's own text (aiohttp's header names and values are ``str``).
HeaderText = bytes | str
#: Header fields as a source hands them over: (name, value) pairs in wire order,
#: or a function that makes them (called once, maybe later).
HeaderFields = (
    Sequence[tuple[HeaderText, HeaderText]]
    | Callable[[], Sequence[tuple[HeaderText, HeaderText]]]
)


def header_text(data: HeaderText) -> str:
    """The text of a header name or value: bytes read as latin-1 (as HTTP/1.1 puts
    them on the wire), a string as it is (a ``str`` subclass made plain)."""
    return data.decode("latin-1") if type(data) is bytes else str(data)


# -- info types ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DNSStartInfo:
    """Argument of ``dns_start``: the host about to be resolved."""

    host: str


@dataclass(frozen=True, kw_only=True)
class DNSDoneInfo:
    """Argument of ``dns_done``: resolved addresses (IP strings) or the error."""

    addrs: list[str]
    err: BaseException | None = None
    coalesced: bool = False


@dataclass(frozen=True, kw_only=True)
class GotConnInfo:
    """Argument of ``got_conn``.

    ``conn`` is the client library's own connection object (for httpx, the httpcore
    connection); ``idle_time`` is in seconds and only set when ``was_idle``.
    """

    conn: object
    reused: bool = False
    was_idle: bool = False
    idle_time: float = 0.0


@dataclass(frozen=True, kw_only=True)
class WroteRequestInfo:
    """Argument of ``wrote_request``: ``err`` is set when writing the request failed."""

    err: BaseException | None = None


@dataclass(frozen=True, kw_only=True)
class TLSConnectionState:
    """First argument of ``tls_handshake_done`` (Go's ``tls.ConnectionState``).

    After a failed handshake every field is empty (``handshake_complete=False``).
    ``peer_certificate`` is the DER-encoded leaf certificate of the server.
    """

    version: str | None = None
    cipher: str | None = None
    negotiated_protocol: str | None = None
    server_name: str | None = None
    peer_certificate: bytes | None = None
    handshake_complete: bool = False

    @classmethod
    def of(cls, ssl_object: Any) -> TLSConnectionState:
        """The state of a completed handshake, from Python's ``ssl.SSLObject`` or
        ``ssl.SSLSocket`` (what every source's connection has); the empty state for
        None."""
        if ssl_object is None or not hasattr(ssl_object, "cipher"):
            return cls()
        cipher = ssl_object.cipher()
        try:
            # The sync object is _ssl._SSLSocket: only the positional form works.
            cert = ssl_object.getpeercert(True)
        except ValueError:  # pragma: no cover - handshake not done
            cert = None
        return cls(
            version=ssl_object.version(),
            cipher=cipher[0] if cipher else None,
            negotiated_protocol=ssl_object.selected_alpn_protocol(),
            server_name=getattr(ssl_object, "server_hostname", None),
            peer_certificate=cert,
            handshake_complete=True,
        )


@dataclass(frozen=True, kw_only=True)
class BodyClosedInfo:
    """Argument of ``body_closed`` (ours): the response body was closed, after it was
    read to the end or before; ``err`` is the error reading it broke off with."""

    read_to_end: bool
    err: BaseException | None = None


@dataclass(frozen=True, kw_only=True)
class RequestDoneInfo:
    """Argument of ``request_done`` (ours): the request's lifecycle ended.

    ``outcome`` is ``"complete"`` (the response read to the end and closed),
    ``"closed_early"`` (closed before its end) or ``"failed"`` (an error before or
    while the response was read, in ``err``).
    """

    outcome: RequestOutcome
    err: BaseException | None = None


@dataclass(frozen=True, kw_only=True)
class ConnClosedInfo:
    """Argument of ``conn_closed`` (ours): a connection was closed, and why (one of
    `CONN_CLOSE_REASONS`). Fired on the trace of the last request it served."""

    conn: object
    reason: ConnCloseReason
    err: BaseException | None = None


class RequestAbortedByHook(Exception):
    """The request was aborted because a ``got_1xx_response`` hook raised (as in Go).

    The hook's exception is the ``__cause__``. The connection is closed (HTTP/1.1) or
    the stream reset (HTTP/2); it is never returned to the pool. Each source raises
    a subclass that is also its library's transport error (for httpx2, a
    ``httpx2.TransportError``), so either ``except`` catches it.
    """


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` (Python 3.11+); on 3.10, the same ``__notes__`` list,
    which tracebacks there do not print but code reading notes finds."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
        return
    notes = getattr(exc, "__notes__", None)  # pragma: no cover - Python 3.10
    if not isinstance(notes, list):  # pragma: no cover
        notes = []
        exc.__notes__ = notes
    notes.append(note)  # pragma: no cover


# -- ClientTrace --------------------------------------------------------------------

Hook = Callable[..., Any]


def _did_you_mean(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, ALL_HOOK_NAMES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{hint} Valid hook names: {', '.join(ALL_HOOK_NAMES)}."


@dataclass(kw_only=True, eq=False)
class ClientTrace:
    """A set of hooks run at the stages of an outgoing HTTP request (Go's ClientTrace).

    Every field is optional. Hooks are plain callables, called the same way from sync
    and async clients; they may run on other threads and after the call that made the
    request returned (``put_idle_conn`` of a streamed response, for instance).

    Example::

        trace = ClientTrace(
            get_conn=lambda host_port: print("get", host_port),
            got_conn=lambda info: print("reused" if info.reused else "new"),
        )
        with with_client_trace(trace):
            httpx.get("https://example.org/")
    """

    get_conn: Callable[[str], Any] | None = None
    got_conn: Callable[[GotConnInfo], Any] | None = None
    put_idle_conn: Callable[[BaseException | None], Any] | None = None
    got_first_response_byte: Callable[[], Any] | None = None
    got_100_continue: Callable[[], Any] | None = None
    got_1xx_response: Callable[[int, Any], Any] | None = None
    dns_start: Callable[[DNSStartInfo], Any] | None = None
    dns_done: Callable[[DNSDoneInfo], Any] | None = None
    connect_start: Callable[[str, str], Any] | None = None
    connect_done: Callable[[str, str, BaseException | None], Any] | None = None
    tls_handshake_start: Callable[[], Any] | None = None
    tls_handshake_done: (
        Callable[[TLSConnectionState, BaseException | None], Any] | None
    ) = None
    wrote_header_field: Callable[[str, list[str]], Any] | None = None
    wrote_headers: Callable[[], Any] | None = None
    wait_100_continue: Callable[[], Any] | None = None
    wrote_request: Callable[[WroteRequestInfo], Any] | None = None
    # -- ours, beyond Go (END_HOOK_NAMES) --
    body_closed: Callable[[BodyClosedInfo], Any] | None = None
    request_done: Callable[[RequestDoneInfo], Any] | None = None
    conn_closed: Callable[[ConnClosedInfo], Any] | None = None

    def __new__(cls, *args: object, **kwargs: object) -> ClientTrace:
        if args:
            raise TypeError(
                "ClientTrace takes hooks as keyword arguments only, e.g. "
                "ClientTrace(got_conn=on_got_conn)."
            )
        for name in kwargs:
            if name not in _HOOK_SET:
                raise TypeError(
                    f"ClientTrace got an unknown hook {name!r}.{_did_you_mean(name)}"
                )
        return super().__new__(cls)

    def __post_init__(self) -> None:
        for name in ALL_HOOK_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            if not callable(value):
                raise TypeError(
                    f"ClientTrace.{name} must be callable or None, got "
                    f"{type(value).__name__} {value!r}."
                )
            if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
                getattr(value, "__call__", None)  # noqa: B004
            ):
                raise TypeError(
                    f"ClientTrace.{name} is an async function: hooks are plain "
                    "callables, called synchronously from sync and async clients "
                    "alike (as in Go, a hook must not block the request). Record what "
                    "you need and await it after the request instead."
                )

    #: The `Recorder` whose recording trace this is (set by the recorder): requests
    #: hand it their hook calls directly.
    _recorder: ClassVar[Any] = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _HOOK_SET:  # keep `names_set` true when a hook is (re)assigned
            object.__setattr__(self, "_names_set", None)
            _PLANS.clear()

    def hooks(self) -> dict[str, Hook]:
        """The hooks that are set, by name."""
        return {n: f for n in ALL_HOOK_NAMES if (f := getattr(self, n)) is not None}

    def names_set(self) -> frozenset[str]:
        """The names of the hooks that are set (cached: sources ask per request)."""
        names: frozenset[str] | None = self.__dict__.get("_names_set")
        if names is None:
            names = frozenset(n for n in ALL_HOOK_NAMES if getattr(self, n) is not None)
            object.__setattr__(self, "_names_set", names)
        return names


def compose(newer: ClientTrace, older: ClientTrace) -> ClientTrace:
    """A trace whose hooks call ``newer``'s hook first, then ``older``'s (Go order).

    Both receive identical arguments. If a hook raises, the other one still runs and
    the *newer* hook's exception wins (the older one's is attached as a note); if only
    one raises, its exception propagates. This matters for ``got_1xx_response``, the
    only hook whose exception aborts the request.
    """
    merged: dict[str, Hook] = {}
    for name in ALL_HOOK_NAMES:
        a, b = getattr(newer, name), getattr(older, name)
        if a is None or b is None:
            if a is not None or b is not None:
                merged[name] = a if a is not None else b
            continue
        merged[name] = _chain(a, b)
    return ClientTrace(**merged)


def _chain(first: Hook, second: Hook) -> Hook:
    def both(*args: Any) -> None:
        try:
            first(*args)
        except BaseException as exc:
            try:
                second(*args)
            except BaseException as other:
                add_note(exc, f"the outer trace's hook raised too: {other!r}")
            raise
        second(*args)

    return both


# -- attaching traces to the context ------------------------------------------------

#: The traces in effect for the current context, newest first.
_CHAIN: contextvars.ContextVar[tuple[ClientTrace, ...]] = contextvars.ContextVar(
    "pytest_httptrace_chain", default=()
)

#: Traces that apply to every request of the process (recorders), whatever the
#: context. Replaced, never mutated, so readers need no lock.
_GLOBAL: tuple[ClientTrace, ...] = ()
_sources_lock = threading.Lock()
_active = 0


def _acquire_sources() -> None:
    """Install the instrumentation sources (reference counted, thread-safe). The
    sources are the registered client libraries (see `pytest_httptrace.sources`);
    this module imports none of them."""
    global _active
    with _sources_lock:
        if _active == 0:
            from . import sources

            sources.start()  # raises on an unsupported version, installing nothing
        _active += 1


def _release_sources() -> None:
    global _active
    _PLANS.clear()  # a trace ended: no plan keeps it (or its recorder) alive
    with _sources_lock:
        _active -= 1
        if _active == 0:
            from . import sources

            sources.stop()


def instrumentation_active() -> bool:
    """Whether any trace or recorder currently keeps the instrumentation installed."""
    return _active > 0


class _Attach:
    """Context manager returned by `with_client_trace` (usable with ``with`` and
    ``async with``)."""

    def __init__(self, trace: ClientTrace) -> None:
        if not isinstance(trace, ClientTrace):
            raise TypeError(
                f"with_client_trace() needs a ClientTrace, got {type(trace).__name__}."
            )
        self._trace = trace
        self._token: contextvars.Token[tuple[ClientTrace, ...]] | None = None

    def __enter__(self) -> ClientTrace:
        _acquire_sources()
        self._token = _CHAIN.set((self._trace, *_CHAIN.get()))
        return self._trace

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None, "with_client_trace() exited before entering"
        _CHAIN.reset(self._token)
        self._token = None
        _release_sources()

    async def __aenter__(self) -> ClientTrace:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


def with_client_trace(trace: ClientTrace) -> _Attach:
    """Attach ``trace`` to the current context (Go's ``WithClientTrace``).

    Every httpx request made inside the block, by any client, is traced. Attaching a
    trace while another is in effect composes them: the newer trace's hooks run first,
    then the older ones. Leaving the block restores the previous trace.

    The trace follows the *context*: asyncio tasks created inside the block inherit it;
    threads started inside the block do not, unless their target runs in
    ``contextvars.copy_context()`` (or the test uses ``httptrace_recorder``, which
    records every thread).

    Example::

        with with_client_trace(ClientTrace(got_conn=print)):
            httpx.get(url)
    """
    return _Attach(trace)


def context_client_trace() -> ClientTrace | None:
    """The trace in effect in this context, or None (Go's ``ContextClientTrace``).

    With nested traces this is their composition (newest hooks first).
    """
    chain = _CHAIN.get()
    if not chain:
        return None
    result = chain[-1]
    for newer in reversed(chain[:-1]):
        result = compose(newer, result)
    return result


def register_global(trace: ClientTrace) -> None:
    """Apply ``trace`` to every request of the process (used by the recorder)."""
    global _GLOBAL
    _acquire_sources()  # first: an unsupported httpx fails here, leaving no trace
    with _sources_lock:
        _GLOBAL = (*_GLOBAL, trace)


def unregister_global(trace: ClientTrace) -> None:
    global _GLOBAL
    with _sources_lock:
        _GLOBAL = tuple(t for t in _GLOBAL if t is not trace)
    _release_sources()


def current_chain(extra: ClientTrace | None = None) -> tuple[ClientTrace, ...]:
    """The traces a request started now would call: context traces (newest first),
    then ``extra`` (a per-request trace), then global recorders not already present."""
    chain = _CHAIN.get()
    if extra is not None and extra not in chain:
        chain = (*chain, extra)
    if _GLOBAL:
        if not chain:
            return _GLOBAL  # the same tuple each time: its plan is cached
        chain = chain + tuple(t for t in _GLOBAL if t not in chain)
    return chain


class _Plan:
    """How a request dispatches to a chain, worked out once per chain: the hooks
    some trace sets, and the recorder when the chain is one recorder's trace (the
    common case: it is called directly, with the request, not through its hook
    functions and a thread-local)."""

    __slots__ = ("only", "wanted")

    def __init__(self, chain: tuple[ClientTrace, ...]) -> None:
        self.wanted: frozenset[str] = frozenset().union(
            *(trace.names_set() for trace in chain)
        )
        self.only: Any = chain[0]._recorder if len(chain) == 1 else None


#: Plans by chain (a chain is a tuple of traces compared by identity). Bounded (a
#: test that makes new traces per request must not grow it without end) and
#: cleared whenever a trace ends or a hook is reassigned.
_PLANS: dict[tuple[ClientTrace, ...], _Plan] = {}


def _new_plan(chain: tuple[ClientTrace, ...]) -> _Plan:
    """The plan of a chain not in `_PLANS` yet (requests look it up there first)."""
    if len(_PLANS) >= 256:
        _PLANS.clear()
    plan = _PLANS[chain] = _Plan(chain)
    return plan


# -- the per-request dispatcher -----------------------------------------------------

_ids = itertools.count(1)
_last_id = 0


def _new_id() -> int:
    global _last_id
    _last_id = next(_ids)
    return _last_id


def requests_started() -> int:
    """How many requests any source has started in this process (to tell whether
    a layer's call led to a traced request of another source below it)."""
    return _last_id


_dispatch_local = threading.local()


@dataclass(eq=False, kw_only=True)
class TracedConnection:
    """What a source knows about one connection (shared by the requests it served)."""

    id: int
    conn_ref: Callable[[], object | None]
    """A weak reference to the client library's connection object: a record must
    not keep a connection (and its socket) alive."""
    protocol: str | None = None
    local_addr: str | None = None
    peer_addr: str | None = None
    tls: TLSConnectionState | None = None
    opened_at: float | None = None
    closed_at: float | None = None
    served: int = 0
    active: int = 0
    idle_since: float | None = None
    close_reason: ConnCloseReason | None = None
    """Why it was closed (one of `CONN_CLOSE_REASONS`), once `closed` was called."""
    close_error: BaseException | None = None
    _last: Callable[[], TracedRequest | None] | None = dataclasses.field(
        default=None, repr=False
    )
    _last_chain: tuple[Callable[[], ClientTrace | None], ...] = dataclasses.field(
        default=(), repr=False
    )

    @property
    def last_request(self) -> TracedRequest | None:
        """The last request it served (sources set it at ``got_conn``): whose
        traces hear ``conn_closed``, and what a source reads to tell why it closed.
        Held weakly, as are its traces: the record lives in the source's weak-keyed
        registry of connections, and a value that reaches its key would keep the
        connection (and its socket) alive. A recorder keeps its requests alive."""
        return None if self._last is None else self._last()

    @last_request.setter
    def last_request(self, request: TracedRequest | None) -> None:
        if request is None:
            self._last, self._last_chain = None, ()
            return
        self._last = weakref.ref(request)
        # Its traces too, for a close after nothing keeps the request: only those
        # that listen.
        self._last_chain = (
            tuple(weakref.ref(t) for t in request.chain)
            if "conn_closed" in request.wanted
            else ()
        )

    @property
    def conn(self) -> object | None:
        """The connection object, or None once it was garbage-collected."""
        return self.conn_ref()

    def closed(
        self,
        reason: ConnCloseReason,
        err: BaseException | None = None,
        *,
        at: float | None = None,
    ) -> None:
        """The source saw this connection close, for ``reason``: keep when and why
        and fire ``conn_closed`` on the trace of the last request it served. Only the
        first call counts (a connection closes once)."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self.close_error = err
        if self.closed_at is None:
            self.closed_at = time.monotonic() if at is None else at
        request = None if self._last is None else self._last()
        if request is not None:
            if "conn_closed" in request.wanted:
                info = ConnClosedInfo(conn=self.conn_ref(), reason=reason, err=err)
                request.fire("conn_closed", info)
            return
        if not self._last_chain:
            return
        info = ConnClosedInfo(conn=self.conn_ref(), reason=reason, err=err)
        # The request is gone (nothing kept it): its traces still hear it.
        for ref in self._last_chain:
            trace = ref()
            hook = None if trace is None else trace.conn_closed
            if hook is None:
                continue
            try:
                hook(info)
            except Exception as exc:
                add_note(exc, "raised by the ClientTrace.conn_closed hook")
                sys.unraisablehook(
                    _Unraisable(exc, "Exception in ClientTrace.conn_closed hook")
                )

    @classmethod
    def of(cls, conn: object, **fields: Any) -> TracedConnection:
        """A record of ``conn``, referenced weakly where the object allows it."""
        try:
            ref: Callable[[], object | None] = weakref.ref(conn)
        except TypeError:  # e.g. a bare object() in a test
            ref = lambda: conn  # noqa: E731
        return cls(conn_ref=ref, **fields)


@dataclass(eq=False, kw_only=True)
class TracedRequest:
    """One request attempt being traced; sources fire hooks through `fire`.

    Made with what a source knows at the start (``method``, ``url``, ``chain``,
    ``source``, ``state``, ``entry_frame``); the rest is filled in as the request
    goes (not constructor arguments: every request's path makes one).

    Hooks run in chain order. An exception from a hook never escapes into the client
    library's internals: it is kept in ``hook_errors`` and re-raised by the source
    when the call that made the request returns (or reported through
    ``sys.unraisablehook`` if that call had already returned). ``got_1xx_response`` is
    the exception (as in Go): see `fire_got_1xx`.
    """

    method: str
    url: object
    """The URL: a ``str``, or the client's URL object (its ``str()`` is the URL),
    made text only when a record is made: not every trace needs it."""
    chain: tuple[ClientTrace, ...]
    id: int = dataclasses.field(default_factory=_new_id, init=False)
    started_at: float = dataclasses.field(default_factory=time.monotonic, init=False)
    returned_at: float | None = dataclasses.field(default=None, init=False)
    closed_at: float | None = dataclasses.field(default=None, init=False)
    status: int | None = dataclasses.field(default=None, init=False)
    error: BaseException | None = dataclasses.field(default=None, init=False)
    connection: TracedConnection | None = dataclasses.field(default=None, init=False)
    hook_errors: list[BaseException] = dataclasses.field(
        default_factory=list, init=False
    )
    abort: BaseException | None = dataclasses.field(default=None, init=False)
    """The exception of a ``got_1xx_response`` hook that aborted the request."""
    source: SourceInfo | None = None
    """Which source (client library and version) traces this request."""
    state: Any = None
    """The source's own per-request state (a typed object of the source's)."""
    answered_by: str | None = dataclasses.field(default=None, init=False)
    """The package that answered the request without any connection (a mocking
    library such as respx), where the source can tell."""
    call: list[TracedRequest] | None = dataclasses.field(default=None, init=False)
    """Every attempt of the user's call this attempt belongs to (redirect hops,
    retries), in order, shared by all of them; None for one made alone."""
    seq: int = dataclasses.field(default=0, init=False)
    entry_frame: Any = None
    """The frame that called into the source for this request, while that call
    runs (the source clears it after): where a recorder starts looking outward for
    the user's line, past the source's and this plugin's frames beneath it."""
    outcome: RequestOutcome | None = dataclasses.field(default=None, init=False)
    """How its lifecycle ended (`RequestDoneInfo.outcome`), once `done` was called."""
    done_at: float | None = dataclasses.field(default=None, init=False)
    done_error: BaseException | None = dataclasses.field(default=None, init=False)
    read_to_end: bool | None = dataclasses.field(default=None, init=False)
    """Whether the body was read to the end before it was closed (None: not closed)."""

    @property
    def returned(self) -> bool:
        return self.returned_at is not None

    def __post_init__(self) -> None:
        plan = _PLANS.get(self.chain) or _new_plan(self.chain)
        self.wanted: frozenset[str] = plan.wanted
        """The hooks some trace of the chain sets: sources skip the others."""
        self._only: Any = plan.only

    def join_call(self, call: list[TracedRequest]) -> None:
        """Make this attempt one more of ``call`` (the list a source keeps per user
        call): one logical request across redirects and retries."""
        call.append(self)
        self.call = call

    def body_closed(
        self, *, read_to_end: bool, err: BaseException | None = None
    ) -> None:
        """The response body was closed (``closed_at`` is when): keep whether it had
        been read to the end and fire ``body_closed``, then ``request_done``.
        Sources call it where they set ``closed_at``; only the first call counts."""
        if self.read_to_end is not None:
            return
        self.read_to_end = read_to_end
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        if "body_closed" in self.wanted:
            self.fire("body_closed", BodyClosedInfo(read_to_end=read_to_end, err=err))
        self.done("complete" if read_to_end and err is None else "closed_early", err)

    def done(self, outcome: RequestOutcome, err: BaseException | None = None) -> None:
        """The request's lifecycle ended with ``outcome``: keep it and fire
        ``request_done`` (once; a failure is ``done("failed", err)``)."""
        if self.outcome is not None:
            return
        if outcome == "closed_early" and err is not None:
            outcome = "failed"
        self.outcome = outcome
        self.done_error = err
        self.done_at = time.monotonic()
        if "request_done" in self.wanted:
            self.fire("request_done", RequestDoneInfo(outcome=outcome, err=err))

    def fire(self, hook: HookName | EndHookName, *args: Any) -> None:
        """Call ``hook`` on every trace of the chain, keeping exceptions for later."""
        if hook not in self.wanted:
            return
        try:
            only = self._only
            if only is not None:  # one recorder: straight to it
                self.seq += 1
                only._on(self, hook, args)
            else:
                self._dispatch(hook, args)
        except Exception as exc:
            self._keep(hook, exc)

    def fire_header_fields(self, fields: HeaderFields) -> None:
        """Fire ``wrote_header_field(key, [value])`` for each field, in wire order
        (made text by `header_text`). ``fields`` may be a function that makes the
        list: a lone recorder keeps it as it is and makes the events when read, so
        work to compute the wire form (HTTP/2's normalisation) is not done on the
        request's path."""
        if "wrote_header_field" not in self.wanted:
            return
        only = self._only
        if only is not None:
            try:
                self.seq += 1
                only._on_header_fields(self, fields)
            except Exception as exc:
                self._keep("wrote_header_field", exc)
            return
        for key, value in fields() if callable(fields) else fields:
            self.fire("wrote_header_field", header_text(key), [header_text(value)])

    def fire_got_1xx(self, code: int, headers: Any) -> None:
        """Fire ``got_1xx_response``; an exception propagates (it aborts the
        request)."""
        self._dispatch("got_1xx_response", (code, headers))

    def _dispatch(self, hook: HookName | EndHookName, args: tuple[Any, ...]) -> None:
        self.seq += 1
        previous = getattr(_dispatch_local, "current", None)
        _dispatch_local.current = self
        try:
            first_error: BaseException | None = None
            for trace in self.chain:
                recorder = trace._recorder
                fn = getattr(trace, hook) if recorder is None else None
                if fn is None and recorder is None:
                    continue
                try:
                    if recorder is not None:
                        if hook in _GO_HOOKS:
                            recorder._on(self, hook, args)
                    else:
                        fn(*args)  # type: ignore[misc]
                except Exception as exc:
                    if first_error is None:
                        first_error = exc
                    else:
                        add_note(first_error, f"another trace's {hook} raised {exc!r}")
            if first_error is not None:
                raise first_error
        finally:
            _dispatch_local.current = previous

    def _keep(self, hook: str, exc: BaseException) -> None:
        add_note(
            exc, f"raised by the ClientTrace.{hook} hook of {self.method} {self.url}"
        )
        if self.returned:
            sys.unraisablehook(
                _Unraisable(
                    exc,
                    f"Exception in ClientTrace.{hook} hook after the call returned",
                )
            )
        else:
            self.hook_errors.append(exc)

    def take_hook_error(self) -> BaseException | None:
        """The first kept hook exception (and forget them all)."""
        errors, self.hook_errors = self.hook_errors, []
        return errors[0] if errors else None


def settle_call_error(call: list[TracedRequest], error: BaseException | None) -> None:
    """The user's call raised ``error``: its last attempt carries it, if that is what
    the attempt's own error was turned into (a library wraps a socket or lower-level
    error in its own: the record keeps what the caller saw). Every source calls this
    when a call ends."""
    if error is None or not call:
        return
    last = call[-1]
    if last.error is None or _made_from(error, last.error):
        last.error = error


def _made_from(error: BaseException, inner: BaseException) -> bool:
    """Whether ``inner`` is what ``error`` was made from: through ``__cause__``,
    ``__context__``, a ``reason`` attribute (urllib3's ``MaxRetryError``) or an
    exception among its ``args`` (requests wraps urllib3's errors so)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        if exc is inner:
            return True
        seen.add(id(exc))
        todo += [exc.__cause__, exc.__context__, getattr(exc, "reason", None)]
        todo += [a for a in exc.args if isinstance(a, BaseException)]
    return False


class _Unraisable:
    """The object ``sys.unraisablehook`` expects (its fields, duck-typed)."""

    def __init__(self, exc: BaseException, message: str) -> None:
        self.exc_type: type[BaseException] = type(exc)
        self.exc_value: BaseException | None = exc
        self.exc_traceback: TracebackType | None = exc.__traceback__
        self.err_msg: str | None = message
        self.object: object = None


def dispatching() -> TracedRequest | None:
    """The request whose hook is running right now on this thread, if any.

    Recorders use it to attribute a hook call to its request: hooks themselves only
    receive Go's arguments.
    """
    return getattr(_dispatch_local, "current", None)


def current_task_name() -> str | None:
    """The name of the running asyncio task, or None outside one."""
    asyncio = sys.modules.get("asyncio")  # not imported: no task can be running
    if asyncio is None:
        return None
    if asyncio._get_running_loop() is None:  # cheap; current_task() would raise
        return None
    task = asyncio.current_task()
    return None if task is None else task.get_name()
