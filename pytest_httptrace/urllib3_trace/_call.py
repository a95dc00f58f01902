"""The user's call and its attempts.

``HTTPConnectionPool.urlopen`` is one *attempt*: urllib3 retries and follows
redirects by calling it again from inside itself, so each attempt and each hop is
its own request record, in order. The *call* is the outermost of
``requests.Session.send``, ``PoolManager.urlopen`` and ``HTTPConnectionPool.urlopen``:
when it returns or raises, every attempt is marked returned and the first hook
exception kept is raised from it (the request completed on the wire).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace import TracedRequest, current_chain, settle_call_error
from ._state import _CALL, _CURRENT, _now, _source_info, _State


def _full_url(pool: Any, url: str) -> str:
    if not url.startswith("/"):
        return url
    host = pool.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = "" if pool.port is None else f":{pool.port}"
    return f"{pool.scheme}://{host}{port}{url}"


def _end_call(call: list[TracedRequest], error: BaseException | None) -> None:
    now = _now()
    for st in call:
        st.returned_at = now
    # The record carries what the caller saw (requests' ConnectionError, say), not
    # the urllib3 or socket error it was made from.
    settle_call_error(call, error)


def _raise_hook_error(call: list[TracedRequest], response: Any) -> None:
    for st in call:
        err = st.take_hook_error()
        if err is not None:
            close = getattr(response, "close", None)
            if close is not None:
                close()
            raise err


def _boundary(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A call boundary (``Session.send``, ``PoolManager.urlopen``)."""

    def call(self: Any, *args: Any, **kw: Any) -> Any:
        if _CALL.get() is not None or not current_chain():
            return orig(self, *args, **kw)
        return _run_call(orig, self, args, kw)

    return call


def _run_call(
    orig: Callable[..., Any], self: Any, args: tuple[Any, ...], kw: dict[str, Any]
) -> Any:
    call: list[TracedRequest] = []
    token = _CALL.set(call)
    try:
        response = orig(self, *args, **kw)
    except BaseException as exc:
        _end_call(call, exc)
        raise
    finally:
        _CALL.reset(token)
    _end_call(call, None)
    _raise_hook_error(call, response)
    return response


def _urlopen(orig: Callable[..., Any]) -> Callable[..., Any]:
    def urlopen(self: Any, method: str, url: str, *args: Any, **kw: Any) -> Any:
        chain = current_chain()
        if not chain:
            return orig(self, method, url, *args, **kw)
        call = _CALL.get()
        if call is None:  # urllib3 used directly: this is the call
            return _run_call(urlopen, self, (method, url, *args), kw)
        st = TracedRequest(
            method=method,
            url=_full_url(self, url),
            chain=chain,
            source=_source_info(),
            state=_State(self),
        )
        previous = _CURRENT.get()
        if previous is not None:
            previous.state.successor = st
        st.join_call(call)
        token = _CURRENT.set(st)
        try:
            return orig(self, method, url, *args, **kw)
        except BaseException as exc:
            if st.state.successor is None:
                if st.error is None:
                    st.error = exc
                # Ended before its connection was closed or put back (no
                # connection at all, say): it failed here (once only).
                st.done("failed", st.error)
            raise
        finally:
            _CURRENT.reset(token)
            # A record must not keep the pool alive: urllib3 closes a pool's
            # connections when it is garbage-collected (PoolManager.clear()).
            st.state.pool = None

    return urlopen
