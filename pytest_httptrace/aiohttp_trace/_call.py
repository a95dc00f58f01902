"""The call: ``ClientSession._request`` (what ``session.get()`` awaits), whose return
is "the call returned" of every attempt it made; hook errors are raised from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace import TracedRequest, current_chain, settle_call_error
from ._core import _CALL, _now, _Slot

# Written for aiohttp 3.14: ``ClientSession.request/get/post/...`` and ``ws_connect``
# all await ``ClientSession._request``; it returns once the response head is read
# (Go's RoundTrip). aiohttp's public TraceConfig signals have no "call returned"
# that covers every attempt, hence the private wrapper.


def _end_call(call: list[TracedRequest], error: BaseException | None) -> None:
    now = _now()
    for st in call:
        if st.returned_at is None:
            st.returned_at = now
    # The record carries what the caller saw (aiohttp wraps OSError and SSL errors
    # in its own).
    settle_call_error(call, error)
    # The attempts that failed without a response to close: the call's last one
    # when it raised (with the caller's error), any earlier one aiohttp gave up on
    # and retried (with its own).
    last = call[-1] if call else None
    for st in call:
        if st.outcome is None:
            err = error if st is last and error is not None else st.state.fail
            if err is None:
                err = error
            if err is not None:
                st.done("failed", err)


def _wrap_request(orig: Callable[..., Any]) -> Callable[..., Any]:
    def _request(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not current_chain():
            return orig(self, *args, **kwargs)  # untraced: the original coroutine
        return traced(self, *args, **kwargs)

    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        call: list[TracedRequest] = []
        slot = _Slot(call)
        token = _CALL.set(slot)
        try:
            response = await orig(self, *args, **kwargs)
        except BaseException as exc:
            _end_call(call, exc)
            raise
        finally:
            slot.value = None
            _CALL.reset(token)
        _end_call(call, None)
        for st in call:
            err = st.take_hook_error()
            if err is not None:
                # The request completed on the wire; the caller gets the hook's
                # exception, and the response it would have got is closed: its
                # attempt failed (the release reports it so).
                for attempt in call:
                    if attempt.outcome is None:
                        attempt.state.fail = err
                response.close()
                raise err
        return response

    return _request
