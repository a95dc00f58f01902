"""Where a request was made: the user's line, and the libraries in between.

The recorder calls `user_origin` once per request, from inside the client library's
stack. The user's line is the innermost frame that is neither this plugin, nor a
traced client library, nor the standard library, nor an installed third-party
package (anything under a ``site-packages`` directory): code the user can change.
The third-party packages between that line and the client library (an SDK, a retry
layer, an SSE helper) are named as "via".
"""

from __future__ import annotations

import site
import sys
import sysconfig
from contextlib import suppress
from functools import cache
from types import CodeType, FrameType

from . import sources

#: Standard-library plumbing between a call and its request (threads, tasks).
_PLUMBING = frozenset(
    {
        "asyncio",
        "concurrent",
        "threading",
        "contextlib",
        "contextvars",
        "functools",
        "anyio",
        "sniffio",
    }
)

_PLUGIN, _INTERNAL, _STDLIB, _THIRD, _USER = range(5)


@cache
def _third_party_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    with suppress(AttributeError):  # virtualenv's old site.py has none
        dirs.update(site.getsitepackages())
    dirs.add(site.getusersitepackages())
    return tuple(sorted(d.rstrip("/") + "/" for d in dirs if d))


@cache
def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({paths[k].rstrip("/") + "/" for k in ("stdlib", "platstdlib")})


def _kind(filename: str, top: str, internal: frozenset[str]) -> int:
    if top == "pytest_httptrace":
        return _PLUGIN
    if top in internal or top in _PLUMBING:
        return _INTERNAL
    if filename.startswith(_third_party_dirs()):
        return _THIRD
    if filename.startswith(_stdlib_dirs()) or filename.startswith("<frozen"):
        return _STDLIB
    return _USER


#: (code object, internal modules) -> (kind, top-level package): a frame's kind
#: depends on its code alone, so each code is classified once.
_kinds: dict[tuple[CodeType, frozenset[str]], tuple[int, str]] = {}


def user_origin(
    skip: int = 1, source: str | None = None
) -> tuple[str | None, tuple[str, ...]]:
    """``(file:line, via)`` for the request being made now.

    ``via`` lists the third-party packages between the user's line and the client
    library of source ``source``, outermost first. Without a user frame (a request
    made by a library's own thread, say) the first frame outside the client library
    and this plugin is the origin.
    """
    internal = sources.internal_modules(source)
    frame: FrameType | None = sys._getframe(skip + 1)
    via: list[str] = []
    fallback: str | None = None
    while frame is not None:
        code = frame.f_code
        known = _kinds.get((code, internal))
        if known is None:
            top = frame.f_globals.get("__name__", "").partition(".")[0]
            known = _kinds[(code, internal)] = (
                _kind(code.co_filename, top, internal),
                top,
            )
        kind, top = known
        if kind == _USER:
            # Outermost first, each package where it was entered first from outside.
            outermost = tuple(dict.fromkeys(reversed(via)))
            return f"{frame.f_code.co_filename}:{frame.f_lineno}", outermost
        if kind == _THIRD:
            if fallback is None:
                fallback = f"{frame.f_code.co_filename}:{frame.f_lineno}"
            via.append(top)
        frame = frame.f_back
    return fallback, ()
