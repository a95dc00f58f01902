"""The two flavours of the httpx instrumentation, and every private read of them.

httpx + httpcore 1.0 and httpx2 + httpcore2 2.16 (pydantic's continuation of httpx)
share one design: the same classes under other module names, the same private
attributes, the same httpcore ``trace`` events. What differs is resolved here, once,
into a `Flavour`: the classes to patch, the exception classes raised or caught, the
``isinstance`` targets, the ``Headers`` type and the flavour's own
`RequestAbortedByHook`. With ``httpx2.alias_httpx()`` ``import httpx`` *is* httpx2:
the httpx flavour then resolves to httpx2's classes and the patch table
deduplicates them by identity, so every hook fires once.

Every read of a private httpx/httpcore attribute is a function at the bottom of this
module, each with the versions it was written for and why no public seam exists.
"""

from __future__ import annotations

import sys
import time
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..sources import SourceInfo, UnsupportedVersionError
from ..trace import RequestAbortedByHook

if TYPE_CHECKING:
    from ..trace import ConnCloseReason, TracedRequest

#: Versions each flavour was written and tested for (major.minor prefixes), by the
#: modules' own ``__version__``: the module actually patched, not the distribution
#: of the same name (under ``alias_httpx()`` "httpx" is httpx2).
SUPPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    "httpx": {"httpx": ("0.27.", "0.28."), "httpcore": ("1.0.",)},
    "httpx2": {"httpx2": ("2.16.",), "httpcore2": ("2.16.",)},
}
#: Import names of each flavour: (client, core).
MODULES = {"httpx": ("httpx", "httpcore"), "httpx2": ("httpx2", "httpcore2")}


class Flavour:
    """httpx or httpx2, resolved: modules, classes, exceptions. Built by `load`."""

    def __init__(self, name: str, client: ModuleType, core: ModuleType) -> None:
        self.name = name
        self.httpx, self.httpcore = client, core
        #: The library whose classes these are ("httpx2" for an aliased httpx).
        self.library = client.__name__
        self.version: str = client.__version__
        self.info = SourceInfo(name=name, library=self.library, version=self.version)

        def cls(module: str, name: str) -> type:
            found: type = getattr(import_module(f"{core.__name__}.{module}"), name)
            return found

        self.Client: type = client.Client
        self.AsyncClient: type = client.AsyncClient
        self.HTTPTransport: type = client.HTTPTransport
        self.AsyncHTTPTransport: type = client.AsyncHTTPTransport
        self.HTTPConnection = cls("_sync.connection", "HTTPConnection")
        self.AsyncHTTPConnection = cls("_async.connection", "AsyncHTTPConnection")
        self.HTTP11Connection = cls("_sync.http11", "HTTP11Connection")
        self.AsyncHTTP11Connection = cls("_async.http11", "AsyncHTTP11Connection")
        self.HTTP2Connection: Any = cls("_sync.http2", "HTTP2Connection")
        self.AsyncHTTP2Connection = cls("_async.http2", "AsyncHTTP2Connection")
        self.SyncBackend = cls("_backends.sync", "SyncBackend")
        self.SyncStream = cls("_backends.sync", "SyncStream")
        self.AnyIOBackend = cls("_backends.anyio", "AnyIOBackend")
        self.AnyIOStream = cls("_backends.anyio", "AnyIOStream")
        self.ConnectionPool = cls("_sync.connection_pool", "ConnectionPool")
        self.AsyncConnectionPool = cls("_async.connection_pool", "AsyncConnectionPool")
        self.h2_connections = (self.HTTP2Connection, self.AsyncHTTP2Connection)
        self.held_streams = (self.SyncStream, self.AnyIOStream)

        self.ConnectError: type[Exception] = core.ConnectError
        self.ConnectTimeout: type[Exception] = core.ConnectTimeout
        self.ReadTimeout: type[Exception] = core.ReadTimeout
        self.WriteError: type[Exception] = core.WriteError
        self.TimeoutException: type[Exception] = core.TimeoutException
        self.RemoteProtocolError: type[Exception] = core.RemoteProtocolError
        self.dial_errors = (core.ConnectError, core.ConnectTimeout)
        self.Headers: type = client.Headers
        #: httpcore2 reads HTTP/2 frames under ``_state_lock``; so must we, when we
        #: reset a stream from another thread's read.
        self.h2_state_lock = name == "httpx2"
        self.RequestAbortedByHook: type[Exception] = type(
            "RequestAbortedByHook",
            (RequestAbortedByHook, client.TransportError),
            {
                "__module__": "pytest_httptrace",
                "__doc__": RequestAbortedByHook.__doc__,
                "__qualname__": f"RequestAbortedByHook[{self.library}]",
            },
        )

    def check_versions(self) -> None:
        """One clear error on a version this flavour was not written for."""
        for module in (self.httpx, self.httpcore):
            found: str = module.__version__
            prefixes = SUPPORTED[self.library][module.__name__]
            if not found.startswith(prefixes):
                wanted = " or ".join(p + "x" for p in prefixes)
                raise UnsupportedVersionError(
                    f"pytest-httptrace supports {module.__name__} {wanted}, found "
                    f"{module.__name__} {found}. Its instrumentation patches private "
                    f"parts of {self.library} and would not tell the truth on another "
                    "version: install a supported version, or disable the plugin "
                    "with -p no:httptrace."
                )

    def __repr__(self) -> str:
        return f"<Flavour {self.name}: {self.library} {self.version}>"


_loaded: dict[str, Flavour] = {}


def imported(name: str) -> tuple[ModuleType, ModuleType] | None:
    """The flavour's (client, core) modules if the client is imported, else None."""
    client_name, core_name = MODULES[name]
    client = sys.modules.get(client_name)
    if client is None:
        return None
    core = sys.modules.get(core_name) or import_module(core_name)
    return client, core


def load(name: str) -> Flavour:
    """The flavour ``name`` ("httpx" or "httpx2"); its client must be imported."""
    modules = imported(name)
    assert modules is not None, f"{name} is not imported"
    client, core = modules
    flavour = _loaded.get(name)
    if flavour is None or flavour.httpx is not client or flavour.httpcore is not core:
        flavour = _loaded[name] = Flavour(name, client, core)
    return flavour


def aliased() -> bool:
    """Whether ``import httpx`` gives httpx2 (``httpx2.alias_httpx()``)."""
    httpx = sys.modules.get("httpx")
    return httpx is not None and httpx.__name__ == "httpx2"


# -- private reads (httpx 0.27/0.28 + httpcore 1.0.x; httpx2 + httpcore2 2.16.x) ----
# Neither library offers a public way to learn these; each is read where the
# instrumentation needs it, and nowhere else.


def inner_connection(conn: object) -> Any:
    """The HTTP11/HTTP2 connection behind an ``HTTPConnection`` (None before the
    dial): ``HTTPConnection._connection``. httpcore has no accessor for it."""
    return getattr(conn, "_connection", None)


def proxy_origin(transport: object) -> Any:
    """The proxy's origin if ``transport`` sends through an HTTP proxy, else None:
    ``HTTPTransport._pool._proxy_url``. httpx does not expose the proxy it built."""
    url = getattr(getattr(transport, "_pool", None), "_proxy_url", None)
    return None if url is None else url.origin


def transport_for(client: object, url: object) -> Any:
    """The transport a client sends ``url`` through (mounts included):
    ``Client._transport_for_url``, httpx's own private lookup."""
    lookup = getattr(client, "_transport_for_url", None)
    return None if lookup is None else lookup(url)


def pool_answerer(flavour: Flavour, transport: object) -> str | None:
    """The package whose function now serves ``transport``'s pool (``_pool``), if it
    is not httpcore's own: a mocking library (respx patches the pool's
    ``handle_request``)."""
    pool = getattr(transport, "_pool", None)
    if pool is None:
        return None
    for name in ("handle_request", "handle_async_request"):
        fn = getattr(type(pool), name, None)
        module = getattr(fn, "__module__", None) or ""
        top = module.partition(".")[0]
        if fn is not None and top and top != flavour.httpcore.__name__:
            return top
    return None


def network_stream(inner: object) -> Any:
    """The socket stream of an HTTP/1.1 connection: ``_network_stream`` (the
    waiting mode reads ahead on it; httpcore keeps it private)."""
    return getattr(inner, "_network_stream", None)


def h2_config(conn: object) -> Any:
    """The h2 configuration of an HTTP/2 connection (``_h2_state.config``), to
    normalise headers exactly as h2 will."""
    return conn._h2_state.config  # type: ignore[attr-defined]


def reset_h2_stream(flavour: Flavour, conn: Any, stream_id: int) -> None:
    """Reset one stream (Go cancels it when ``got_1xx_response`` raises) and make its
    reader fail, through ``_h2_state`` (h2's connection) and ``_events`` (httpcore's
    per-stream queue). httpcore has no public way to cancel one stream."""
    import h2.errors
    import h2.events

    def reset() -> None:
        conn._h2_state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        event = h2.events.StreamReset(
            stream_id=stream_id,
            error_code=h2.errors.ErrorCodes.CANCEL,
            remote_reset=False,
        )
        pending = conn._events.get(stream_id)
        if pending is not None:
            pending.append(event)

    # httpcore2's sync connection guards h2 state with a thread lock; its async one
    # needs none here (we do not yield while resetting).
    if flavour.h2_state_lock and isinstance(conn, flavour.HTTP2Connection):
        with conn._state_lock:
            reset()
    else:
        reset()


def close_reason(
    flavour: Flavour, conn: Any, request: TracedRequest | None, *, pool_closing: bool
) -> tuple[ConnCloseReason, BaseException | None]:
    """Why httpcore is closing ``conn`` (an HTTP11/HTTP2 connection, read just before
    its ``close`` runs), and the error it closes for.

    httpcore has no public word for it; its own state says it (httpcore 1.0.9 and
    httpcore2 2.16.x alike): ``_read_exception`` (HTTP/2: a read failed, the
    connection is dead) and ``_connection_terminated`` (HTTP/2: GOAWAY received);
    ``_state`` IDLE with ``_expire_at`` past (the pool's keep-alive expiry), IDLE with
    the socket readable (``has_expired``'s "server disconnected" probe, HTTP/1.1), or
    IDLE otherwise (the pool's idle surplus or room for another origin:
    ``max_keepalive_connections`` / ``max_connections``); an HTTP/1.1 connection
    closed with a request on it by h11's states (``_h11_state``: ERROR a malformed
    or truncated response, MUST_CLOSE/CLOSED ``Connection: close``, anything else a
    response not read to its end) and the request's own error. ``request`` is the
    last request the connection served; ``pool_closing`` whether the client (its
    pool) is being closed.
    """
    h2 = isinstance(conn, flavour.h2_connections)
    if h2:
        read_error = getattr(conn, "_read_exception", None)
        if read_error is not None:
            return _error_reason(flavour, read_error, first_byte=False), read_error
        if getattr(conn, "_connection_terminated", None) is not None:
            return "server", None
    if pool_closing:
        return "client_closed", None
    state = getattr(getattr(conn, "_state", None), "name", "")
    if state == "IDLE":
        expire_at = getattr(conn, "_expire_at", None)
        if expire_at is not None and time.monotonic() > expire_at:
            return "idle_expired", None
        stream = network_stream(conn)
        if not h2 and stream is not None and stream.get_extra_info("is_readable"):
            return "server", None
        return "pool_full", None
    if h2:  # with streams open and no error: the client gave up on it
        return "client", None
    import h11

    s = None if request is None else request.state
    err = None if request is None else request.error
    if isinstance(err, GeneratorExit):
        err = None
    machine = getattr(conn, "_h11_state", None)
    ours = getattr(machine, "our_state", None)
    theirs = getattr(machine, "their_state", None)
    if h11.ERROR in (ours, theirs):
        return "protocol_error", err
    if err is not None:
        first = bool(getattr(s, "first_byte", False))
        return _error_reason(flavour, err, first_byte=first), err
    if theirs in (h11.MUST_CLOSE, h11.CLOSED) or ours in (h11.MUST_CLOSE, h11.CLOSED):
        sent = getattr(s, "request", None)
        asked = sent is not None and any(
            k.lower() == b"connection" and b"close" in v.lower()
            for k, v in sent.headers
        )
        return ("client" if asked else "server"), None
    return "client", None  # a response closed before its end


def _error_reason(
    flavour: Flavour, err: BaseException, *, first_byte: bool
) -> ConnCloseReason:
    """A connection closed for ``err``: the client's own doing (a timeout, a
    cancellation), the server's (end of stream before any response byte), or a
    protocol or transport error (a reset, a malformed or truncated response)."""
    if not isinstance(err, Exception) or isinstance(err, flavour.TimeoutException):
        return "client"
    if isinstance(err, flavour.RemoteProtocolError) and not first_byte:
        message = str(err)
        if message.startswith("Server disconnected"):
            return "server"
    return "protocol_error"
