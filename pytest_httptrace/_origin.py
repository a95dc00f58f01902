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


#: internal modules -> {id(code): (kind, top-level package, code)}: a frame's kind
#: depends on its code alone, so each code is classified once. Keyed by ``id``:
#: hashing a code object hashes its contents (the recorder's most expensive step
#: per request, once); the code is kept in the value, so its id is not reused.
_kinds: dict[frozenset[str], dict[int, tuple[int, str, CodeType]]] = {}

#: internal modules -> {id(code): code} of the frames the walk steps past without
#: a look (this plugin, the client library and its plumbing, the standard library):
#: most frames of every walk, so the cheapest test. Kept with `_kinds`, which holds
#: the same codes (their ids are not reused).
_passed: dict[frozenset[str], dict[int, CodeType]] = {}

#: (id(code), instruction offset) -> (code, "file:line"): a call site's text, made
#: once (a frame's line number is decoded from the code's line table each time).
_sites: dict[tuple[int, int], tuple[CodeType, str]] = {}


def _site(frame: FrameType) -> str:
    code = frame.f_code
    key = (id(code), frame.f_lasti)
    known = _sites.get(key)
    if known is not None and known[0] is code:
        return known[1]
    text = f"{code.co_filename}:{frame.f_lineno}"
    if len(_sites) >= 4096:
        _sites.clear()
    _sites[key] = (code, text)
    return text


def user_origin(
    skip: int = 1, source: str | None = None, frame: FrameType | None = None
) -> tuple[str | None, tuple[str, ...]]:
    """``(file:line, via)`` for the request being made now, looked for outward from
    ``frame`` if given (a frame of the running call the source knows to be near the
    user's: `TracedRequest.entry_frame`), else from ``skip`` frames above this one.

    ``via`` lists the third-party packages between the user's line and the client
    library of source ``source``, outermost first. Without a user frame (a request
    made by a library's own thread, say) the first frame outside the client library
    and this plugin is the origin.
    """
    internal = sources.internal_modules(source)
    kinds = _kinds.get(internal)
    if kinds is None:
        kinds = _kinds[internal] = {}
        _passed[internal] = {}
    passed = _passed[internal]
    if frame is None:
        frame = sys._getframe(skip + 1)
    via: list[str] = []
    fallback: str | None = None
    while frame is not None:
        code = frame.f_code
        if passed.get(id(code)) is code:
            frame = frame.f_back
            continue
        known = kinds.get(id(code))
        if known is None or known[2] is not code:
            top = frame.f_globals.get("__name__", "").partition(".")[0]
            known = kinds[id(code)] = (
                _kind(code.co_filename, top, internal),
                top,
                code,
            )
        kind = known[0]
        if kind < _THIRD:  # _PLUGIN, _INTERNAL, _STDLIB: stepped past from now on
            passed[id(code)] = code
        elif kind == _USER:
            # Outermost first, each package where it was entered first from outside.
            outermost = tuple(dict.fromkeys(reversed(via))) if via else ()
            return _site(frame), outermost
        if kind == _THIRD:
            if fallback is None:
                fallback = _site(frame)
            via.append(known[1])
        frame = frame.f_back
    return fallback, ()
