"""The call (``Client.send``) and the transport: ``get_conn``, and the per-request
httpcore ``trace`` callback."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import httpx

from ..trace import ClientTrace, TracedRequest, current_chain
from ._continue import _await_continue, _wait_for_continue
from ._core import _CALL, _CURRENT, RequestAbortedByHook, _now, _source_info, _State
from ._events import _on_httpcore_event

# -- the call and the transport ------------------------------------------------------


def _proxy_origin(transport: Any) -> Any:
    """The proxy's origin if ``transport`` sends through a proxy, else None."""
    url = getattr(getattr(transport, "_pool", None), "_proxy_url", None)
    return None if url is None else url.origin


def _chain(request: httpx.Request) -> tuple[ClientTrace, ...]:
    """The traces this request would call (empty: not traced at all)."""
    return current_chain(request.extensions.get("client_trace"))


def _start_request(
    transport: Any, request: httpx.Request, chain: tuple[ClientTrace, ...]
) -> TracedRequest:
    st = TracedRequest(
        method=request.method,
        url=str(request.url),
        chain=chain,
        source=_source_info(),
        state=_State(),
    )
    call = _CALL.get()
    if call is not None:
        call.append(st)
    proxy = _proxy_origin(transport)
    if proxy is not None:
        # Go reports the first hop. Through a proxy only get_conn and the proxy's
        # DNS/connect are observed: httpcore runs the tunnel (CONNECT) and the
        # target's TLS with the caller's extensions, which would mix their events
        # into this request's. See the support matrix.
        st.state.flags.add("proxied")
        host, port = proxy.host.decode("ascii"), proxy.port
    else:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme in ("https", "wss") else 80)
    if ":" in host:
        host = f"[{host}]"
    st.fire("get_conn", f"{host}:{port}")
    return st


def _finish_transport(st: TracedRequest, response: httpx.Response | None) -> None:
    if response is not None:
        st.status = response.status_code
    if _CALL.get() is None:
        st.returned_at = _now()


def _transport_error(
    st: TracedRequest, request: httpx.Request, exc: BaseException
) -> BaseException:
    """The exception the call raises: a got_1xx_response abort becomes an httpx error
    caused by the hook's exception."""
    abort = st.abort
    if abort is not None and not isinstance(exc, RequestAbortedByHook):
        exc = RequestAbortedByHook(
            f"request aborted: the got_1xx_response hook raised {abort!r}",
            request=request,
        )
    st.error = exc
    st.state.data.pop("request", None)
    if _CALL.get() is None:
        st.returned_at = _now()
    return exc


def _sync_callback(st: TracedRequest, user_cb: Any) -> Any:
    """The per-request httpcore ``trace`` callback (chained with the caller's)."""

    def callback(name: str, info: dict[str, Any]) -> None:
        _on_httpcore_event(st, name, info)
        if "hold_body" in st.state.flags:
            _wait_for_continue(st, st.state.data["request"])
        if user_cb is not None:
            user_cb(name, info)

    return callback


def _async_callback(st: TracedRequest, user_cb: Any) -> Any:
    async def callback(name: str, info: dict[str, Any]) -> None:
        _on_httpcore_event(st, name, info)
        if "hold_body" in st.state.flags:
            await _await_continue(st, st.state.data["request"])
        if user_cb is not None:
            await user_cb(name, info)

    return callback


def _enter(
    st: TracedRequest, request: httpx.Request, make_callback: Callable[..., Any]
) -> tuple[dict[str, Any], contextvars.Token[TracedRequest | None]]:
    """Make ``st`` this context's request and install its httpcore callback, except
    through a proxy: there httpcore runs the tunnel and the target's TLS with the
    caller's extensions, so only the proxy's DNS/connect (via ``_CURRENT``) are
    observed. Returns what `_leave` restores."""
    original = request.extensions
    if "proxied" not in st.state.flags:
        callback = make_callback(st, original.get("trace"))
        request.extensions = {**original, "trace": callback}
    return original, _CURRENT.set(st)


def _leave(
    request: httpx.Request,
    entered: tuple[dict[str, Any], contextvars.Token[TracedRequest | None]],
) -> None:
    request.extensions, token = entered
    _CURRENT.reset(token)


def _sync_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
        chain = _chain(request)
        if not chain:
            return orig(self, request)  # type: ignore[no-any-return]
        st = _start_request(self, request, chain)
        entered = _enter(st, request, _sync_callback)
        try:
            response = orig(self, request)
        except BaseException as exc:
            err = _transport_error(st, request, exc)
            if err is exc:
                raise
            raise err from st.abort
        finally:
            _leave(request, entered)
        _finish_transport(st, response)
        if _CALL.get() is None:
            _raise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return handle_request


def _async_handle_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def handle_async_request(self: Any, request: httpx.Request) -> Any:
        chain = _chain(request)
        if not chain:
            return orig(self, request)  # untraced: the original coroutine as is
        return traced(self, request, chain)

    async def traced(
        self: Any, request: httpx.Request, chain: tuple[ClientTrace, ...]
    ) -> httpx.Response:
        st = _start_request(self, request, chain)
        entered = _enter(st, request, _async_callback)
        try:
            response = await orig(self, request)
        except BaseException as exc:
            err = _transport_error(st, request, exc)
            if err is exc:
                raise
            raise err from st.abort
        finally:
            _leave(request, entered)
        _finish_transport(st, response)
        if _CALL.get() is None:
            await _araise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return handle_async_request


def _raise_hook_error(st: TracedRequest, response: httpx.Response | None) -> None:
    err = st.take_hook_error()
    if err is not None:
        if response is not None:
            response.close()
        raise err


async def _araise_hook_error(
    st: TracedRequest, response: httpx.Response | None
) -> None:
    err = st.take_hook_error()
    if err is not None:
        if response is not None:
            await response.aclose()
        raise err


def _end_call(call: list[TracedRequest], error: BaseException | None) -> None:
    now = _now()
    for st in call:
        st.returned_at = now
    if error is not None and call:
        last = call[-1]
        # The record carries what the caller saw: httpx's exception, not the
        # httpcore one it was mapped from (kept as its __cause__).
        if last.error is None or last.error in (error.__cause__, error.__context__):
            last.error = error


def _sync_send(orig: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        # Not traced, or a send() inside a send() (event hooks: one call).
        if _CALL.get() is not None or not _chain(request):
            return orig(self, request, **kwargs)  # type: ignore[no-any-return]
        call: list[TracedRequest] = []
        token = _CALL.set(call)
        try:
            response = orig(self, request, **kwargs)
        except BaseException as exc:
            _end_call(call, exc)
            raise
        finally:
            _CALL.reset(token)
        _end_call(call, None)
        for st in call:
            _raise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return send


def _async_send(orig: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: httpx.Request, **kwargs: Any) -> Any:
        if _CALL.get() is not None or not _chain(request):
            return orig(self, request, **kwargs)  # the original coroutine as is
        return traced(self, request, **kwargs)

    async def traced(
        self: Any, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        call: list[TracedRequest] = []
        token = _CALL.set(call)
        try:
            response = await orig(self, request, **kwargs)
        except BaseException as exc:
            _end_call(call, exc)
            raise
        finally:
            _CALL.reset(token)
        _end_call(call, None)
        for st in call:
            await _araise_hook_error(st, response)
        return response  # type: ignore[no-any-return]

    return send
