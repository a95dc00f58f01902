"""Client libraries as *sources* of hook calls, registered with the trace model.

The model (`trace`), the recorder, the assertions, the reports and the CLI know no
client library. Each library is a `Source`: an object that can tell whether its
library is installed, patch it (`install`) and restore it exactly (`uninstall`). A
source is registered by name with a dotted path (``"package.module:attribute"``) and
resolved only when the first trace or recorder starts, never when the plugin loads.

A source is installed once its library has been imported *and* some trace or
recorder is in effect. A library imported later (inside a test, say) is
instrumented as soon as its import completes: the registry watches the source's
``trigger`` module on ``sys.meta_path`` while tracing is active. The registry itself
never imports a client library, so a user's conftest can still call, for example,
``httpx2.alias_httpx()`` before anything imports httpx.

Example (a source for a library of your own)::

    class MySource:
        name = "myclient"
        trigger = "myclient"              # installed when this module is imported
        internal_modules = ("myclient",)  # frames skipped when finding the user's line

        def libraries(self): return [LibraryStatus("myclient", "1.2", True)]
        def install(self): ...    # patch; raise UnsupportedVersionError if need be
        def uninstall(self): ...  # restore the exact original functions
        def patched_functions(self): return {}
        def diagnose(self): return []

    register_source("myclient", "mypackage.tracing:SOURCE")
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "PATCH_MARK",
    "LibraryStatus",
    "Source",
    "SourceInfo",
    "UnsupportedVersionError",
    "active_sources",
    "library_report",
    "mark_patch",
    "patched_functions",
    "register_source",
    "registered_sources",
    "unregister_source",
]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Which source, library and version recorded a request (``record.source``).

    ``library`` is the library whose classes did the I/O: with
    ``httpx2.alias_httpx()`` an ``import httpx`` client is ``httpx2``.
    """

    name: str
    library: str
    version: str

    def __str__(self) -> str:
        return f"{self.library} {self.version}"


@dataclass(frozen=True, slots=True)
class LibraryStatus:
    """A client library as a source sees it (for the report header and messages)."""

    library: str
    version: str | None
    """The version of the module that is (or would be) patched; None: not installed."""
    supported: bool
    note: str = ""
    """E.g. ``"httpx is aliased to httpx2"`` or the supported range."""

    def describe(self) -> str:
        if self.version is None:
            return f"{self.library} not installed"
        text = f"{self.library} {self.version}"
        if not self.supported:
            text += " (not supported: its requests are not traced)"
        return text + (f" ({self.note})" if self.note else "")


class UnsupportedVersionError(RuntimeError):
    """A client library was imported at a version its source was not written for.

    Raised when a trace or recorder starts, once per start, naming the library, the
    version found and the supported range.
    """


@runtime_checkable
class Source(Protocol):
    """What the model needs of a client library's instrumentation."""

    name: str
    trigger: str
    """The module whose import makes the source installable (``"httpx2"``)."""
    internal_modules: tuple[str, ...]
    """Top-level module names of the library's own frames (``"httpcore2"``, ``"h11"``):
    skipped when the recorder looks for the user's line that made a request."""

    def libraries(self) -> list[LibraryStatus]:
        """The libraries this source traces, with versions (no import needed)."""
        ...

    def install(self) -> None:
        """Patch the library (its trigger module is imported). Idempotent. Raises
        `UnsupportedVersionError` on a version it was not written for."""
        ...

    def uninstall(self) -> None:
        """Restore every patched function exactly. Idempotent."""
        ...

    def patched_functions(self) -> dict[tuple[type, str], Any]:
        """Every attribute the source patches, as found in its class now (only for
        libraries already imported): for isolation checks."""
        ...

    def diagnose(self) -> list[str]:
        """Sentences naming why requests of this library may have gone unrecorded
        (an unsupported version, a transport that bypasses the pool...)."""
        ...

    # Optional: ``leak_hint: str``, how to give a response back with this library,
    # printed under a leak (see `leak_hint`).


#: Set on every function a source puts in place of a library's own (so isolation
#: checks can find a leftover patch by looking at the class alone).
PATCH_MARK = "__httptrace_patch__"


def mark_patch(patched: Callable[..., Any], original: Any, name: str) -> None:
    """Give ``patched`` the identity of ``original`` and our mark."""
    patched.__name__ = getattr(original, "__name__", name)
    patched.__qualname__ = getattr(original, "__qualname__", name)
    patched.__doc__ = getattr(original, "__doc__", None)
    patched.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(patched, PATCH_MARK, True)


# -- the registry ---------------------------------------------------------------------

#: name -> dotted path ("module:attribute") or the source object once resolved.
_REGISTRY: dict[str, str | Source] = {
    "httpx": "pytest_httptrace.httpx_trace:HTTPX",
    "httpx2": "pytest_httptrace.httpx_trace:HTTPX2",
    "aiohttp": "pytest_httptrace.aiohttp_trace:AIOHTTP",
    "urllib3": "pytest_httptrace.urllib3_trace:URLLIB3",
    "requests": "pytest_httptrace.urllib3_trace:REQUESTS",
}
_lock = threading.RLock()
_active = False
_installed: dict[str, Source] = {}


def register_source(name: str, target: str | Source) -> None:
    """Register a source under ``name``: a `Source` or a dotted path to one
    (``"package.module:attribute"``, imported when tracing first starts)."""
    if not isinstance(target, str) and not isinstance(target, Source):
        raise TypeError(
            f"register_source({name!r}, ...) takes a Source or a dotted path "
            f"'module:attribute', got {type(target).__name__}."
        )
    if isinstance(target, str) and ":" not in target:
        raise ValueError(
            f"register_source({name!r}, {target!r}): a dotted path reads "
            "'package.module:attribute'."
        )
    with _lock:
        if name in _REGISTRY:
            raise ValueError(f"a source named {name!r} is registered already")
        _REGISTRY[name] = target
        if _active:
            _activate(name)


def unregister_source(name: str) -> None:
    """Remove a registered source (uninstalling it first if it is installed)."""
    with _lock:
        source = _installed.pop(name, None)
        if source is not None:
            source.uninstall()
        _WATCHER.forget(name)
        _REGISTRY.pop(name, None)


def _resolve(name: str) -> Source:
    target = _REGISTRY[name]
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    source = getattr(importlib.import_module(module_name), attr)
    if not isinstance(source, Source):
        raise TypeError(f"source {name!r} ({target}) is not a Source: {source!r}")
    _REGISTRY[name] = source
    return source


def registered_sources() -> list[Source]:
    """Every registered source (resolving dotted paths: imports our modules, never a
    client library)."""
    with _lock:
        return [_resolve(name) for name in list(_REGISTRY)]


def active_sources() -> list[Source]:
    """The sources installed now."""
    with _lock:
        return list(_installed.values())


def start() -> None:
    """Tracing starts: install every source whose library is imported, watch the
    others' imports. An unsupported version raises (nothing stays installed)."""
    global _active
    with _lock:
        _active = True
        _LATE_ERRORS.clear()
        try:
            for name in list(_REGISTRY):
                _activate(name)
        except BaseException:
            stop()
            raise


def stop() -> None:
    """Tracing stops: uninstall everything, stop watching imports."""
    global _active
    with _lock:
        _active = False
        _WATCHER.forget_all()
        for source in reversed(list(_installed.values())):
            source.uninstall()
        _installed.clear()


def _activate(name: str) -> None:
    source = _resolve(name)
    if sys.modules.get(source.trigger) is not None:  # None: an import blocked
        source.install()
        _installed[name] = source
    else:
        _WATCHER.watch(name, source.trigger)


def _imported(name: str) -> None:
    """The trigger module of source ``name`` finished importing while tracing."""
    with _lock:
        if not _active or name in _installed or name not in _REGISTRY:
            return
        source = _resolve(name)
        try:
            source.install()
        except UnsupportedVersionError as exc:
            # Raising here would break the user's import: say it where it is read.
            _LATE_ERRORS.append(exc)
            return
        _installed[name] = source


#: Unsupported versions found on a late import (reported by `diagnose_all`).
_LATE_ERRORS: list[UnsupportedVersionError] = []


def patched_functions() -> dict[tuple[type, str], Any]:
    """Every attribute any source patches, as found in its class now."""
    found: dict[tuple[type, str], Any] = {}
    for source in registered_sources():
        found.update(source.patched_functions())
    return found


def internal_modules(name: str | None = None) -> frozenset[str]:
    """Top-level module names of source ``name``'s library (another source's
    library above it, httpx2 under an SDK's aiohttp transport say, is a library in
    between); without a name, or for one not installed, those of every installed
    source."""
    source = _installed.get(name) if name is not None else None
    if source is not None:
        return _frozen(tuple(source.internal_modules))
    with _lock:
        return _frozen(
            tuple(m for s in _installed.values() for m in s.internal_modules)
        )


@functools.lru_cache(maxsize=64)
def _frozen(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(names)


#: HTTP client libraries, by import name, with the module a source would trigger on
#: to trace them (requests runs on urllib3).
KNOWN_CLIENTS = {
    "aiohttp": "aiohttp",
    "requests": "urllib3",
    "urllib3": "urllib3",
    "niquests": "niquests",
    "pycurl": "pycurl",
    "httplib2": "httplib2",
    "tornado.httpclient": "tornado.httpclient",
    "treq": "treq",
}


def diagnose_all() -> list[str]:
    """What every source says may have gone past the recorder, and the client
    libraries imported in this process that no registered source traces."""
    lines = [str(exc) for exc in _LATE_ERRORS]
    registered = registered_sources()
    for source in registered:
        lines.extend(source.diagnose())
    triggers = {source.trigger for source in registered}
    for module, trigger in KNOWN_CLIENTS.items():
        if sys.modules.get(module) is not None and trigger not in triggers:
            lines.append(
                f"{module} is imported in this process, but no source of "
                f"pytest-httptrace traces it: its requests are not recorded."
            )
    return lines


def leak_hint(name: str | None) -> str | None:
    """How to give a response back, in the words of source ``name``'s library (a
    source may set ``leak_hint``); None when the source says nothing."""
    if name is None:
        return None
    with _lock:
        if name not in _REGISTRY:
            return None
        hint: str | None = getattr(_resolve(name), "leak_hint", None)
    return hint


def library_report() -> list[str]:
    """One phrase per client library found (for the report header)."""
    seen: list[str] = []
    for source in registered_sources():
        for status in source.libraries():
            if status.version is not None and status.describe() not in seen:
                seen.append(status.describe())
    return seen


# -- watching imports -----------------------------------------------------------------


class _Watcher(importlib.abc.MetaPathFinder):
    """Notices when a watched module finishes importing (no import of its own).

    It finds the module's spec with the finders after it and wraps the spec's loader
    for that one import; the module keeps its own loader afterwards.
    """

    def __init__(self) -> None:
        self._watched: dict[str, str] = {}  # module -> source name
        self._local = threading.local()

    def watch(self, source: str, module: str) -> None:
        self._watched[module] = source
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def forget(self, source: str) -> None:
        self._watched = {m: s for m, s in self._watched.items() if s != source}
        if not self._watched:
            self.forget_all()

    def forget_all(self) -> None:
        self._watched = {}
        while self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._watched.get(fullname)
        if source is None or getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec: importlib.machinery.ModuleSpec | None = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._local.busy = False
        loader = None if spec is None else spec.loader
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(loader, source)
        return spec


class _NotifyingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, source: str) -> None:
        self._loader, self._source = loader, source

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        result: ModuleType | None = self._loader.create_module(spec)
        return result

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        _imported(self._source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_WATCHER = _Watcher()
