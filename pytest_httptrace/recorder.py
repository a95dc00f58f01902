"""The recorder: a `ClientTrace` that keeps every hook call, attributed to its request.

`Recorder` is what the ``httptrace_recorder`` fixture yields. It is importable and
usable without pytest (``with Recorder.start() as rec: ...``), which is how the CLI
and the benchmarks use it.

Example::

    with Recorder.start() as rec:
        with httpx.Client() as client:
            client.get(url)
            client.get(url)
    first, second = rec.requests
    assert second.got_conn is not None and second.got_conn.reused
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from ._origin import user_origin
from .sources import SourceInfo
from .trace import (
    ALL_HOOK_NAMES,
    END_HOOK_NAMES,
    HOOK_ARGS,
    HOOK_NAMES,
    BodyClosedInfo,
    ClientTrace,
    ConnClosedInfo,
    ConnCloseReason,
    EndHookName,
    GotConnInfo,
    HeaderFields,
    HeaderText,
    HookName,
    RequestDoneInfo,
    RequestOutcome,
    TLSConnectionState,
    TracedConnection,
    TracedRequest,
    current_task_name,
    dispatching,
    header_text,
    register_global,
    unregister_global,
)

__all__ = ["ConnectionRecord", "Event", "Recorder", "RequestRecord"]


@dataclass(frozen=True, kw_only=True, eq=False, slots=True)
class Event:
    """One hook call.

    ``args`` holds the hook's arguments by Go's names in snake_case; hooks that take
    one info struct in Go (``got_conn``, ``dns_start``, ``dns_done``,
    ``wrote_request``) have that struct's fields (``args["reused"]``). ``raw`` has
    the arguments as the hook received them. Build one by hand with `make_event`.
    """

    hook: HookName | EndHookName
    time: float
    thread: str
    task: str | None
    request: RequestRecord | None
    after_return: bool
    index: int
    raw: tuple[Any, ...] = ()
    _args: Mapping[str, Any] | None = None

    @property
    def args(self) -> Mapping[str, Any]:
        """The arguments by name (built from ``raw`` on first use: recording is on
        the request's path, reading is not)."""
        args = self._args
        if args is None:
            args = _event_args(self.hook, self.raw)
            object.__setattr__(self, "_args", args)
        return args

    def __repr__(self) -> str:
        req = f" request={self.request.id}" if self.request is not None else ""
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"<Event {self.hook}({args}){req}>"


@dataclass(eq=False, kw_only=True)
class ConnectionRecord:
    """One connection seen by the recorder, and the requests it served."""

    id: int
    _traced: TracedConnection = field(repr=False)
    requests: list[RequestRecord] = field(default_factory=list, repr=False)
    _conn: object = field(default=None, repr=False)

    @property
    def conn(self) -> object:
        """The client library's connection object (httpcore's, for httpx); the
        record keeps it alive as long as the record lives."""
        return self._conn

    @property
    def protocol(self) -> str | None:
        return self._traced.protocol

    @property
    def local_addr(self) -> str | None:
        return self._traced.local_addr

    @property
    def peer_addr(self) -> str | None:
        return self._traced.peer_addr

    @property
    def tls(self) -> TLSConnectionState | None:
        return self._traced.tls

    @property
    def opened_at(self) -> float | None:
        return self._traced.opened_at

    @property
    def closed_at(self) -> float | None:
        return self._traced.closed_at

    @property
    def close_reason(self) -> ConnCloseReason | None:
        """Why it was closed (a key of `CONN_CLOSE_REASONS`), None while open or when
        its source could not tell."""
        return self._traced.close_reason

    @property
    def close_error(self) -> BaseException | None:
        """The error it was closed for, if any (always set for ``protocol_error``;
        a source may give one for other reasons too: a timeout the client gave up
        on)."""
        return self._traced.close_error


@dataclass(eq=False, kw_only=True)
class RequestRecord:
    """One request attempt: its hook calls in order, and what became of it.

    A redirect or a retry is a new request attempt with a record of its own.
    """

    id: int
    method: str
    url: str
    phase: str
    origin: str | None
    """``file:line`` of the user code that made the request (for failure messages):
    the innermost frame outside the client library, this plugin, the standard
    library and installed third-party packages."""
    via: tuple[str, ...] = ()
    """Third-party packages between `origin` and the client library, outermost first
    (``("openai",)`` for a request an SDK made)."""
    connection: ConnectionRecord | None = field(default=None, repr=False)
    _traced: TracedRequest | None = field(default=None, repr=False)
    _last_seq: int = field(default=-1, repr=False)
    _conn_seen: TracedConnection | None = field(default=None, repr=False)
    _events: list[Event] = field(default_factory=list, repr=False)
    _owner: Recorder | None = field(default=None, repr=False)

    @property
    def events(self) -> list[Event]:
        """Its hook calls (`Event`), in order."""
        if self._owner is not None:
            self._owner._flush()  # events are built when first read
        return self._events

    @property
    def hooks(self) -> list[str]:
        """Hook names in the order they were called."""
        return [e.hook for e in self.events]

    @property
    def got_conn(self) -> GotConnInfo | None:
        """The ``got_conn`` info, or None if no connection was obtained (the
        last one, if the pool sent the request again on another connection)."""
        for e in reversed(self.events):
            if e.hook == "got_conn":
                info = e.raw[0] if e.raw else None
                if isinstance(info, GotConnInfo):
                    return info
                return GotConnInfo(**e.args)  # an event built by hand (make_event)
        return None

    @property
    def source(self) -> SourceInfo | None:
        """Which client library (and version) made the request."""
        return None if self._traced is None else self._traced.source

    @property
    def answered_by(self) -> str | None:
        """The package that answered the request without a connection (a mocking
        library: ``"respx"``), or None for a request that went to the network."""
        return None if self._traced is None else self._traced.answered_by

    @property
    def attempts(self) -> list[RequestRecord]:
        """Every attempt of the logical request this one belongs to, in order: the
        hops of a followed redirect, the attempts of a retry (by a retrying
        transport, urllib3's ``Retry``...), each a record of its own with its own
        connection and hooks; ``[self]`` for a request made alone.

        Example::

            client.get(url_redirecting_twice, follow_redirects=True)
            first, *_ = httptrace_recorder.requests
            assert [r.status for r in first.attempts] == [302, 302, 200]
        """
        traced = self._traced
        owner = self._owner
        if traced is None or traced.call is None or owner is None:
            return [self]
        known = owner._by_traced
        return [known[t.id] for t in traced.call if t.id in known]

    @property
    def attempt(self) -> int:
        """This record's position (from 1) among `attempts`."""
        return next(i for i, r in enumerate(self.attempts, 1) if r is self)

    @property
    def made_at(self) -> str | None:
        """``origin`` with the libraries in between: ``"test_x.py:12 (via openai)"``."""
        if self.origin is None or not self.via:
            return self.origin
        return f"{self.origin} (via {', '.join(self.via)})"

    @property
    def status(self) -> int | None:
        """Final status code, or None if the request failed before a response."""
        return None if self._traced is None else self._traced.status

    @property
    def error(self) -> BaseException | None:
        """The exception the request raised, if any (for an attempt that failed
        and was retried, the error it failed with: `request_done`'s)."""
        traced = self._traced
        if traced is None:
            return None
        if traced.error is None and traced.outcome == "failed":
            return traced.done_error
        return traced.error

    @property
    def started_at(self) -> float | None:
        return None if self._traced is None else self._traced.started_at

    @property
    def returned_at(self) -> float | None:
        """When the call that made the request returned (or raised)."""
        return None if self._traced is None else self._traced.returned_at

    @property
    def closed_at(self) -> float | None:
        """When the response was closed (its connection released), if it was."""
        return None if self._traced is None else self._traced.closed_at

    @property
    def outcome(self) -> RequestOutcome | None:
        """How its lifecycle ended: ``"complete"``, ``"closed_early"``, ``"failed"``;
        None while it has not ended (a response still open)."""
        return None if self._traced is None else self._traced.outcome

    @property
    def done_at(self) -> float | None:
        """When its lifecycle ended (``request_done``), if it did."""
        return None if self._traced is None else self._traced.done_at

    @property
    def ends(self) -> list[Event]:
        """Our end hooks (`END_HOOK_NAMES`: ``body_closed``, ``request_done``, and
        ``conn_closed`` on the last request its connection served), in time order.

        Not in `events` (which are Go's hooks, as recorded): they are derived, when
        read, from what the source kept on the request and its connection, so they
        carry no thread or task (``thread == ""``). Live, every source fires them
        in this order after Go's last hook: ``body_closed``, ``request_done``,
        ``conn_closed``, except where the connection closes as part of ending the
        request (a body closed early, a failure): then ``conn_closed`` may come
        first.
        """
        traced = self._traced
        if traced is None:
            return []
        ends: list[Event] = []

        def add(hook: EndHookName, at: float | None, info: object) -> None:
            if at is None:
                return
            returned = traced.returned_at
            ends.append(
                Event(
                    hook=hook,
                    time=at,
                    thread="",
                    task=None,
                    request=self,
                    after_return=returned is not None and returned <= at,
                    index=-1,
                    raw=(info,),
                )
            )

        if traced.read_to_end is not None:
            info = BodyClosedInfo(read_to_end=traced.read_to_end, err=traced.done_error)
            add("body_closed", traced.closed_at, info)
        if traced.outcome is not None:
            done = RequestDoneInfo(outcome=traced.outcome, err=traced.done_error)
            add("request_done", traced.done_at, done)
        conn = self.connection
        if (
            conn is not None
            and conn.close_reason is not None
            and conn.requests
            and conn.requests[-1] is self
        ):
            closed = ConnClosedInfo(
                conn=conn.conn, reason=conn.close_reason, err=conn.close_error
            )
            add("conn_closed", conn.closed_at, closed)
        ends.sort(key=lambda e: e.time)
        return ends

    def getcalls(self, *names: str) -> list[Event]:
        """The events of this request whose hook is one of ``names`` (our end hooks
        included, from `ends`)."""
        _check_names(names)
        found = [e for e in self.events if e.hook in names]
        if any(n in names for n in END_HOOK_NAMES):
            found += [e for e in self.ends if e.hook in names]
            found.sort(key=lambda e: e.time)
        return found

    def getcall(self, name: str) -> Event:
        """The single event of hook ``name``; fails if there is none or several."""
        calls = self.getcalls(name)
        if len(calls) != 1:
            raise ValueError(
                f"expected exactly one {name!r} call for {self.method} {self.url}, "
                f"found {len(calls)}: {self.hooks}"
            )
        return calls[0]

    def __repr__(self) -> str:
        status = self.status
        return f"<RequestRecord #{self.id} {self.method} {self.url} status={status}>"

    def normalized(self) -> dict[str, Any]:
        """This request's lifecycle as plain data that is equal across runs: for
        snapshot tests (see `pytest_httptrace.snapshot`)."""
        from .snapshot import normalize_requests

        return normalize_requests([self])[0]

    def to_har(self) -> dict[str, Any]:
        """This request as one HAR 1.2 entry (see `pytest_httptrace.har`)."""
        from .har import har_entry

        return har_entry(self)

    # -- phases (read-only; defined once in _phases.py) ------------------------------

    @property
    def phases(self) -> list[Phase]:
        """Its phases (`Phase`: blocked, dns, connect, tls, send, wait, receive), in
        time order, derived from the events on each read (see `phases`)."""
        from ._phases import phases

        return phases(self)

    @property
    def in_flight(self) -> tuple[float, float]:
        """``(start, end)`` in monotonic seconds (see `in_flight`)."""
        from ._phases import in_flight

        return in_flight(self)

    @property
    def released_at(self) -> float | None:
        """When it gave its connection back; None if it never did (a leak)."""
        from ._phases import released_at

        return released_at(self)

    @property
    def leaked(self) -> bool:
        """It took a connection and its response was never closed (`find_leaks`)."""
        from ._phases import is_leak

        return is_leak(self)


def _check_names(names: Sequence[str]) -> None:
    from .trace import _did_you_mean

    for name in names:
        if name not in ALL_HOOK_NAMES:
            raise ValueError(f"unknown hook name {name!r}.{_did_you_mean(name)}")


class Recorder(Sequence[RequestRecord]):
    """Records every hook call of every traced HTTP request while it is started.

    A Recorder records process-wide: requests from any thread or task, whatever their
    context. It is a sequence of `RequestRecord` (``len(rec)``, ``rec[0]``); ``.events``
    has all hook calls in time order and ``.trace`` is the recording `ClientTrace`
    itself (attaching it with ``with_client_trace`` where it already records does not
    record anything twice).

    Records are kept per phase (``"setup"``, ``"call"``, ``"teardown"``) like
    ``caplog``: ``.requests`` and ``.events`` show the current phase,
    `get_records` any phase.
    """

    def __init__(self, *, _private: bool = False) -> None:
        if not _private:
            raise TypeError(
                "Recorder is created by the httptrace_recorder fixture or by "
                "Recorder.start(); it is exported for type annotations."
            )
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._events: list[Event] = []
        #: Hook calls as recorded, on the request's path: `_STRIDE` items each
        #: (request, hook, time, thread, task, after return, args), one flat list
        #: (no tuple per call for the garbage collector to walk), turned into
        #: `Event` objects (``_events``) only when something reads them. A list's
        #: ``+=`` of a tuple is one step under the GIL: entries never interleave.
        self._raw: list[Any] = []
        self._by_traced: dict[int, RequestRecord] = {}
        self._connections: dict[int, ConnectionRecord] = {}
        self._recording = False
        self.phase = "call"
        self.trace = ClientTrace(**{name: self._hook(name) for name in HOOK_NAMES})
        # Requests whose chain holds this trace call `_on` directly (trace.py).
        object.__setattr__(self.trace, "_recorder", self)

    # -- lifecycle ----------------------------------------------------------------

    @classmethod
    def start(cls) -> Recorder:
        """A new recorder, recording from now until `stop` (also a context manager)."""
        rec = cls(_private=True)
        rec._start()
        return rec

    def _start(self) -> None:
        if not self._recording:
            self._recording = True
            register_global(self.trace)

    def stop(self) -> None:
        """Stop recording; what was recorded stays readable."""
        if self._recording:
            self._recording = False
            unregister_global(self.trace)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def recording(self) -> bool:
        return self._recording

    # -- recording ----------------------------------------------------------------

    def _hook(self, name: HookName) -> Any:
        def record(*args: Any) -> None:
            self._record(name, args)

        record.__name__ = record.__qualname__ = f"record_{name}"
        return record

    def _record(self, hook: HookName, args: tuple[Any, ...]) -> None:
        """A call of one of this recorder's hook functions (its trace composed with
        another, or called by hand): the request is the one dispatching now."""
        if not self._recording:
            return
        traced = dispatching()
        if traced is None:  # a hook called by hand, outside any request
            thread = threading.current_thread()
            self._raw += (None, hook, _monotonic(), thread, _task(), False, args)
            return
        self._on(traced, hook, args)

    def _on(self, traced: TracedRequest, hook: HookName, args: Any) -> None:
        """One hook call of ``traced``: handed over by the request itself when the
        recorder's trace is in its chain, or found by `_record`. On every request's
        path, so as little as can be (no call to find the thread or the task)."""
        if not self._recording:
            return
        request = self._by_traced.get(traced.id)
        if request is None or request._conn_seen is not traced.connection:
            request = self._attach(traced)
        if request._last_seq == traced.seq:
            return  # the same dispatch reached this recorder twice
        request._last_seq = traced.seq
        thread = _threads.get(_get_ident()) or threading.current_thread()
        task = None  # trace.current_task_name(), without the call
        aio = _modules.get("asyncio")  # not imported: no task can be running
        if aio is not None and aio._get_running_loop() is not None:
            current = aio.current_task()
            task = None if current is None else current.get_name()
        self._raw += (
            request,
            hook,
            _monotonic(),
            thread,
            task,
            traced.returned_at is not None,
            args,
        )

    def _on_header_fields(self, traced: TracedRequest, fields: HeaderFields) -> None:
        """``wrote_header_field`` for each of ``fields`` (`TracedRequest.
        fire_header_fields`): one entry for all, made into events when read."""
        self._on(traced, "wrote_header_field", _Fields(fields))

    def _attach(self, traced: TracedRequest) -> RequestRecord:
        """The record of ``traced`` (new on its first hook call), with its
        connection once the source knows it."""
        with self._lock:
            request = self._by_traced.get(traced.id)
            if request is None:
                request = self._new_request(traced)
            conn = traced.connection
            if conn is not None and request._conn_seen is not conn:
                # Its connection, once known; another one if the pool sent the
                # request again elsewhere (the hooks ran again from get_conn).
                request.connection = self._connection(conn, request)
                request._conn_seen = conn
            return request

    def _flush(self) -> None:
        """Build the `Event` of every hook call recorded since the last read."""
        raw = self._raw
        if not raw:
            return
        with self._lock:
            end = len(raw)  # hooks on other threads may append meanwhile
            for i in range(0, end, _STRIDE):
                request, hook, t, thread, task, after, args = raw[i : i + _STRIDE]
                # `_on` keeps the Thread (its name is read here, off the path)
                name = thread if type(thread) is str else thread.name
                if type(args) is _Fields:  # one entry for all the header fields
                    for key, value in args.fields():
                        field_args = (_text(key), [_text(value)])
                        self._event(request, hook, t, name, task, after, field_args)
                else:
                    self._event(request, hook, t, name, task, after, args)
            del raw[:end]  # built: the events are what is kept (one step, too)

    def _event(
        self,
        request: RequestRecord | None,
        hook: HookName,
        t: float,
        thread: str,
        task: str | None,
        after: bool,
        args: tuple[Any, ...],
    ) -> None:
        event = Event(
            hook=hook,
            time=t,
            thread=thread,
            task=task,
            request=request,
            after_return=after,
            index=len(self._events),
            raw=args,
        )
        self._events.append(event)
        if request is not None:
            request._events.append(event)

    def _new_request(self, traced: TracedRequest) -> RequestRecord:
        source = traced.source.name if traced.source is not None else None
        origin, via = user_origin(skip=2, source=source, frame=traced.entry_frame)
        request = RequestRecord(
            id=len(self._by_traced) + 1,
            method=traced.method,
            url=str(traced.url),
            phase=self.phase,
            origin=origin,
            via=via,
            _traced=traced,
            _owner=self,
        )
        self._by_traced[traced.id] = request
        self._requests.append(request)
        return request

    def _connection(
        self, traced: TracedConnection, request: RequestRecord
    ) -> ConnectionRecord:
        record = self._connections.get(traced.id)
        if record is None:
            record = ConnectionRecord(
                id=len(self._connections) + 1, _traced=traced, _conn=traced.conn
            )
            self._connections[traced.id] = record
        record.requests.append(request)
        return record

    # -- reading ------------------------------------------------------------------

    def get_records(self, when: str) -> list[RequestRecord]:
        """The requests started in phase ``when`` ("setup", "call" or "teardown")."""
        if when not in ("setup", "call", "teardown"):
            raise ValueError(
                f"when must be 'setup', 'call' or 'teardown', not {when!r}"
            )
        with self._lock:
            return [r for r in self._requests if r.phase == when]

    @property
    def requests(self) -> list[RequestRecord]:
        """Requests of the current phase, in start order."""
        return self.get_records(self.phase)

    @property
    def all_requests(self) -> list[RequestRecord]:
        """Requests of every phase, in start order."""
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[Event]:
        """Hook calls of the current phase's requests, in time order."""
        self._flush()
        with self._lock:
            return [
                e
                for e in self._events
                if e.request is None or e.request.phase == self.phase
            ]

    @property
    def connections(self) -> list[ConnectionRecord]:
        """Connections used by the current phase's requests, in order first seen."""
        requests = self.requests
        seen: dict[int, ConnectionRecord] = {}
        for r in requests:
            if r.connection is not None:
                seen.setdefault(r.connection.id, r.connection)
        return sorted(seen.values(), key=lambda c: c.id)

    def clear(self) -> None:
        """Forget everything recorded so far (recording goes on)."""
        with self._lock:
            self._requests.clear()
            self._events.clear()
            self._raw.clear()
            self._by_traced.clear()
            self._connections.clear()

    def getcalls(self, *names: str) -> list[Event]:
        """Events (current phase) whose hook is one of ``names``."""
        _check_names(names)
        return [e for e in self.events if e.hook in names]

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...
    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        return self.requests[index]

    def __len__(self) -> int:
        return len(self.requests)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.requests)

    def __repr__(self) -> str:
        return (
            f"<Recorder {len(self.requests)} requests, {len(self.events)} events, "
            f"phase={self.phase!r}>"
        )

    def normalized(self) -> list[dict[str, Any]]:
        """The current phase's requests as plain data that is equal across runs,
        connections numbered in order of first use: for snapshot tests (see
        `pytest_httptrace.snapshot`)."""
        from .snapshot import normalize_requests

        return normalize_requests(self.requests)

    def to_har(self, *, title: str | None = None) -> dict[str, Any]:
        """Every phase's requests as a HAR 1.2 document (see `pytest_httptrace.har`);
        with ``title``, on one page of that name."""
        from .har import har_document

        return har_document([(title, self.all_requests)])


_STRIDE = 7  # items per hook call in `Recorder._raw`
_monotonic = time.monotonic
_task = current_task_name
_modules = sys.modules
_get_ident = threading.get_ident
# threading.current_thread() is this lookup (stable across CPython 3.x); done here
# without the call on every hook call.
_threads: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]


#: Header names and values as text, shared by the events of every request (the
#: same few fields repeat: a string each per event would be most of a record).
_texts: dict[HeaderText, str] = {}


def _text(data: HeaderText) -> str:
    text = _texts.get(data)
    if text is None:
        if len(_texts) >= 2048:
            _texts.clear()
        text = _texts[data] = header_text(data)
    return text


class _Fields:
    """The header fields ``fire_header_fields`` gave (a list, or a function that
    makes it): one ``wrote_header_field`` event each, made when read."""

    __slots__ = ("_fields",)

    def __init__(self, fields: HeaderFields) -> None:
        self._fields = fields

    def fields(self) -> Sequence[tuple[HeaderText, HeaderText]]:
        fields = self._fields
        return fields() if callable(fields) else fields


def _event_args(hook: str, args: tuple[Any, ...]) -> dict[str, Any]:
    names = HOOK_ARGS[hook]
    if len(args) == 1 and dataclasses.is_dataclass(args[0]) and len(names) != 1:
        info = args[0]
        return {n: getattr(info, n) for n in names}
    if len(args) == 1 and dataclasses.is_dataclass(args[0]) and len(names) == 1:
        info = args[0]
        if hasattr(info, names[0]):
            return {names[0]: getattr(info, names[0])}
    return dict(zip(names, args, strict=False))


def make_event(
    hook: HookName | str,
    *,
    request: RequestRecord | None = None,
    time: float = 0.0,
    thread: str = "MainThread",
    task: str | None = None,
    after_return: bool = False,
    index: int = 0,
    **args: Any,
) -> Event:
    """Build an `Event` by hand (for tests of assertion helpers and for other tools)."""
    if hook not in HOOK_ARGS:
        _check_names([hook])
    return Event(
        hook=hook,  # type: ignore[arg-type]  # checked just above
        _args=args,
        time=time,
        thread=thread,
        task=task,
        request=request,
        after_return=after_return,
        index=index,
    )


# For the annotations of RequestRecord's phase properties (_phases.py reads records
# through their properties, and imports nothing from here at run time).
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from ._phases import Phase
