"""`hook()` and `HookMatcher`: pattern items that match a hook call by name and
arguments (values, classes or callables).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import TypeAlias

from ..recorder import Event
from ..trace import ALL_HOOK_NAMES, HOOK_ARGS, _did_you_mean
from ._format import _short


class HookMatcher:
    """One call of hook ``name`` whose arguments satisfy ``matchers``; built by `hook`.

    Each matcher is compared with the recorded argument: a class means "is an
    instance of", another callable is called with the value and must return
    something truthy (if it raises, that is a mismatch), anything else is compared
    with ``==``.
    """

    __slots__ = ("matchers", "name")

    def __init__(self, name: str, matchers: Mapping[str, object]) -> None:
        self.name = name
        self.matchers = dict(matchers)

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is a call of this hook with matching arguments."""
        if event.hook != self.name:
            return False
        return all(
            _arg_matches(expected, event.args, arg)
            for arg, expected in self.matchers.items()
        )

    def explain(self, event: Event) -> list[str]:
        """Why ``event`` does not match, one line per argument (empty if it does, or
        if it is another hook)."""
        if event.hook != self.name:
            return []
        return [
            _arg_problem(expected, event.args, arg)
            for arg, expected in self.matchers.items()
            if not _arg_matches(expected, event.args, arg)
        ]

    def __repr__(self) -> str:
        args = "".join(f", {k}={_matcher_text(v)}" for k, v in self.matchers.items())
        return f"hook({self.name!r}{args})"


#: An item of an `assert_hook_sequence` pattern.
PatternItem: TypeAlias = str | HookMatcher | EllipsisType


def hook(name: str, **arg_matchers: object) -> HookMatcher:
    """A pattern item for `assert_hook_sequence`: one call of hook ``name`` whose
    arguments match ``arg_matchers``.

    Arguments are named as in ``Event.args`` (Go's names in snake_case; info structs
    are flattened, so ``got_conn`` has ``reused``, ``was_idle``, ``idle_time``). A
    matcher is a value (compared with ``==``), a class (``isinstance``) or a callable
    taking the recorded value and returning true if it matches.

    Example::

        assert_hook_sequence(request, [
            "get_conn",
            hook("got_conn", reused=True, idle_time=lambda s: s < 5),
            ...,
            hook("wrote_request", err=None),
            ...,
            hook("request_done", outcome="complete"),  # ours: END_HOOK_NAMES
        ])

    An unknown hook name raises `ValueError` (with a did-you-mean); an argument the
    hook does not have raises `TypeError` listing the hook's arguments.
    """
    __tracebackhide__ = True
    if name not in ALL_HOOK_NAMES:
        raise ValueError(f"hook(): unknown hook name {name!r}.{_did_you_mean(name)}")
    allowed = HOOK_ARGS[name]
    for arg in arg_matchers:
        if arg not in allowed:
            if not allowed:
                raise TypeError(f"hook({name!r}) takes no arguments; got {arg}=...")
            raise TypeError(
                f"hook({name!r}) has no argument {arg!r}. {name}'s arguments: "
                f"{', '.join(allowed)}."
            )
    return HookMatcher(name, arg_matchers)


def _arg_matches(expected: object, args: Mapping[str, object], arg: str) -> bool:
    if arg not in args:
        return False
    value = args[arg]
    try:
        if isinstance(expected, type):
            return isinstance(value, expected)
        if callable(expected):
            return bool(expected(value))
        return bool(value == expected)
    except Exception:
        return False


def _arg_problem(expected: object, args: Mapping[str, object], arg: str) -> str:
    if arg not in args:
        return f"{arg}: not recorded"
    value = args[arg]
    if isinstance(expected, type):
        return (
            f"{arg}: expected an instance of {expected.__name__}, got {_short(value)}"
        )
    if callable(expected):
        call = f"{_callable_name(expected)}({_short(value)})"
        try:
            result = expected(value)
        except Exception as exc:
            return f"{arg}: {call} raised {_short(exc, 60)}"
        return f"{arg}: {call} returned {_short(result)}"
    try:
        equal = bool(value == expected)
    except Exception as exc:
        return f"{arg}: comparing with {_short(expected)} raised {_short(exc, 60)}"
    if equal:  # pragma: no cover - only called for mismatches
        return f"{arg}: matches"
    return f"{arg}: expected {_short(expected)}, got {_short(value)}"


def _matcher_text(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    if callable(value):
        return _callable_name(value)
    return _short(value, 60)


def _callable_name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name.rsplit("<locals>.", 1)[-1]
    return _short(fn, 60)
