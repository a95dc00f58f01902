"""The call and the transport: ``Client.send`` marks when the user's call returns;
``HTTPTransport.handle_request`` starts each request attempt (``get_conn``) and
installs its httpcore ``trace`` callback.

Each is written once, as a generator that yields where the sync and async versions
differ (call the original, close a response); `_run` and `_arun` drive it. So the
sync and async paths cannot drift apart.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Generator
from typing import Any

from .. import trace as _trace
from ..trace import (
    ClientTrace,
    TracedRequest,
    current_chain,
    settle_call_error,
)
from ._continue import await_continue, wait_for_continue
from ._events import HANDLERS
from ._flavour import Flavour, pool_answerer, proxy_origin, transport_for
from ._mocked import watch as watch_mocked
from ._state import CALL, CURRENT, RequestState, note_bypass, now, state

# -- driving one flow, sync or async ----------------------------------------------


class _Close:
    """Yielded by a flow: close this response (``close`` or ``aclose``)."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


#: Yielded by a flow: call the original function now; its result is sent back.
_ORIGINAL = object()

Flow = Generator[object, Any, Any]


def _run(flow: Flow, original: Callable[[], Any]) -> Any:
    """Drive ``flow`` synchronously."""
    op = next(flow)
    while True:
        try:
            result = original() if op is _ORIGINAL else op.response.close()  # type: ignore[attr-defined]
        except BaseException as exc:
            try:
                op = flow.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            op = flow.send(result)
        except StopIteration as stop:
            return stop.value


async def _arun(flow: Flow, original: Callable[[], Any]) -> Any:
    """Drive ``flow`` in a coroutine (``original()`` returns an awaitable)."""
    op = next(flow)
    while True:
        try:
            if op is _ORIGINAL:
                result = await original()
            else:
                result = await op.response.aclose()  # type: ignore[attr-defined]
        except BaseException as exc:
            try:
                op = flow.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            op = flow.send(result)
        except StopIteration as stop:
            return stop.value


# -- the transport: one request attempt ----------------------------------------------


def _chain(request: Any) -> tuple[ClientTrace, ...]:
    """The traces this request would call (empty: not traced at all)."""
    return current_chain(request.extensions.get("client_trace"))


def _start(
    fl: Flavour,
    transport: Any,
    request: Any,
    chain: tuple[ClientTrace, ...],
    caller: Any = None,
) -> TracedRequest:
    s = RequestState(fl)
    st = TracedRequest(
        method=request.method,
        url=request.url,  # httpx's URL: made text when a record is made
        chain=chain,
        source=fl.info,
        state=s,
        entry_frame=caller,
    )
    call = CALL.get()
    if call is not None:
        st.join_call(call)
    proxy = proxy_origin(transport)
    if proxy is not None:
        # Go reports the first hop. Through a proxy only get_conn and the proxy's
        # DNS/connect are observed: httpcore runs the tunnel (CONNECT) and the
        # target's TLS with the caller's extensions, which would mix their events
        # into this request's. See the support matrix.
        s.proxied = True
        host, port = proxy.host.decode("ascii"), proxy.port
    else:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme in ("https", "wss") else 80)
    if ":" in host:
        host = f"[{host}]"
    s.host_port = f"{host}:{port}"
    st.fire("get_conn", s.host_port)
    return st


def _callback(st: TracedRequest, user_cb: Any, is_async: bool) -> Any:
    """The per-request httpcore ``trace`` callback (chained with the caller's).
    It runs on every httpcore event, so it looks the handler up itself (what
    `on_httpcore_event` does, one call less)."""
    s = state(st)
    handlers = HANDLERS
    if is_async:

        async def acallback(name: str, info: dict[str, Any]) -> None:
            entry = handlers.get(name)
            if entry is not None:
                entry[0](st, entry[1], info)
            if s.hold_body:
                await await_continue(st, s.request)
            if user_cb is not None:
                await user_cb(name, info)

        return acallback

    def callback(name: str, info: dict[str, Any]) -> None:
        entry = handlers.get(name)
        if entry is not None:
            entry[0](st, entry[1], info)
        if s.hold_body:
            wait_for_continue(st, s.request)
        if user_cb is not None:
            user_cb(name, info)

    return callback


def _transport_flow(
    fl: Flavour,
    transport: Any,
    request: Any,
    chain: tuple[ClientTrace, ...],
    is_async: bool,
    caller: Any,
) -> Flow:
    st = _start(fl, transport, request, chain, caller)
    # This context's request, and its httpcore callback (not through a proxy: there
    # httpcore runs the tunnel and the target's TLS with the caller's extensions,
    # so only the proxy's DNS/connect, via CURRENT, are observed).
    extensions = request.extensions
    s: RequestState = st.state
    if not s.proxied:
        callback = _callback(st, extensions.get("trace"), is_async)
        request.extensions = {**extensions, "trace": callback}
    token: contextvars.Token[TracedRequest | None] = CURRENT.set(st)
    direct = CALL.get() is None  # the transport is used without a client around it
    try:
        response = yield _ORIGINAL
    except BaseException as exc:
        error = _failed(fl, st, request, exc, direct)
        if error is exc:
            raise
        raise error from st.abort
    finally:
        request.extensions = extensions
        CURRENT.reset(token)
        st.entry_frame = None  # the call is over: keep no frame (nor its locals)
    st.status = response.status_code
    if s.conn is None and not s.proxied:  # a response with no connection: a mock's
        st.answered_by = pool_answerer(fl, transport)
        watch_mocked(fl, st, response, is_async)
    # This attempt ends when *its* transport call returned, whatever wraps it (a
    # retrying transport, redirects): its own interval, not the outer call's.
    s.attempt_returned_at = returned = now()
    if direct:
        st.returned_at = returned
        hook_error = st.take_hook_error()
        if hook_error is not None:
            st.done("failed", hook_error)
            yield _Close(response)
            raise hook_error
    return response


def _failed(
    fl: Flavour, st: TracedRequest, request: Any, exc: BaseException, direct: bool
) -> BaseException:
    """What the failed attempt raises: a got_1xx_response abort becomes the
    flavour's `RequestAbortedByHook` caused by the hook's exception; anything else
    propagates unchanged."""
    if st.abort is not None and not isinstance(exc, fl.RequestAbortedByHook):
        exc = fl.RequestAbortedByHook(  # httpx's TransportError(message, request=)
            f"request aborted: the got_1xx_response hook raised {st.abort!r}",
            request=request,  # type: ignore[call-arg]
        )
    st.error = exc
    s = state(st)
    s.request = None
    s.attempt_returned_at = returned = now()
    if direct:
        st.returned_at = returned
    st.done("failed", exc)
    return exc


Runner = Callable[[Flow, Callable[[], Any]], Any]
Factory = Callable[[Callable[..., Any], Flavour], Callable[..., Any]]


def _transport_wrapper(run: Runner, is_async: bool) -> Factory:
    def factory(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
        def handle_request(self: Any, request: Any) -> Any:
            chain = _chain(request)
            if not chain:  # untraced: the original call (or coroutine) as is
                return orig(self, request)
            # Our caller's frame: where the user's line is looked for from.
            caller = sys._getframe(1)
            flow = _transport_flow(fl, self, request, chain, is_async, caller)
            return run(flow, lambda: orig(self, request))

        return handle_request

    return factory


#: ``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request``.
handle_request = _transport_wrapper(_run, False)
handle_async_request = _transport_wrapper(_arun, True)


# -- the call: Client.send ------------------------------------------------------------


def _send_flow(fl: Flavour, client: Any, request: Any) -> Flow:
    call: list[TracedRequest] = []
    started = _trace._last_id  # requests_started(), without the call
    token = CALL.set(call)
    try:
        response = yield _ORIGINAL
    except BaseException as exc:
        _end_call(call, exc)
        raise
    finally:
        CALL.reset(token)
    # Answered without the pool, and no other source (aiohttp under an SDK's
    # transport, say) traced it either: say so when nothing was recorded.
    if not call and _trace._last_id == started:
        note_bypass(fl, transport_for(client, request.url))
    _end_call(call, None)
    for st in call:
        error = st.take_hook_error()
        if error is not None:
            call[-1].done("failed", error)
            yield _Close(response)
            raise error
    return response


def _end_call(call: list[TracedRequest], error: BaseException | None) -> None:
    t = now()
    # An attempt that a later one followed (a redirect hop, a retried attempt)
    # ended when its own transport call returned, whatever wrapped it; the last
    # one when the user's call did.
    for st in call[:-1]:
        st.returned_at = state(st).attempt_returned_at or t
    if call:
        call[-1].returned_at = t
    # The record carries what the caller saw: httpx's exception, not the httpcore
    # one it was mapped from.
    settle_call_error(call, error)


def _send_wrapper(run: Runner) -> Factory:
    def factory(orig: Callable[..., Any], fl: Flavour) -> Callable[..., Any]:
        def send(self: Any, request: Any, **kwargs: Any) -> Any:
            # Not traced, or a send() inside a send() (event hooks: one call).
            if CALL.get() is not None or not _chain(request):
                return orig(self, request, **kwargs)
            flow = _send_flow(fl, self, request)
            return run(flow, lambda: orig(self, request, **kwargs))

        return send

    return factory


#: ``Client.send`` and ``AsyncClient.send``: one call, however many attempts
#: (redirects, retries).
send = _send_wrapper(_run)
async_send = _send_wrapper(_arun)
