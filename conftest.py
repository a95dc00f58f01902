"""Isolation guards for our own suite (issue: nothing left behind).

- Before every test: every client library of every registered source (httpx/httpcore,
  httpx2/httpcore2, ...) is exactly as shipped (identity of every function we ever
  patch, and none carries our patch mark), no trace or recorder is active, no waiting
  mode is left on. A test that leaked a patch makes the *next* test fail, naming the
  culprit.
- At the end of the session (each xdist worker): no thread and no file descriptor
  that the session opened remains.

It also holds the client-library axis of the httpx tests (`httpx_lib`): a module that
marks itself with ``pytestmark = pytest.mark.usefixtures("httpx_lib")`` runs each of
its tests once per installed httpx flavour, httpx and httpx2. For the duration of the
test the module's ``httpx`` (and ``httpcore``) names are the flavour's modules and the
local servers' ``client()`` / ``async_client()`` build that flavour's clients, so the
tests are written once, against ``httpx``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest
import trustme  # noqa: F401

# Imported once, up front: pytester's inline runs drop the modules first imported
# inside them, and cryptography (under trustme) cannot be imported a second time.
# The model's modules likewise: a second copy of `recorder` would make records of
# one inline run fail the isinstance checks of another's assertions.
import pytest_httptrace.assertions
import pytest_httptrace.raw_server
import pytest_httptrace.recorder
import pytest_httptrace.server  # noqa: F401
from pytest_httptrace import httpx_trace, sources, trace
from pytest_httptrace.server import HTTPX_LIBRARIES

# The client libraries too: httpx imports httpcore lazily and caches httpcore's
# exception classes, so an httpcore first imported (and then dropped) inside an inline
# run would leave httpx unable to map the next copy's errors.
for _library in ("httpx", "httpcore", "httpx2", "httpcore2"):
    if importlib.util.find_spec(_library) is not None:
        importlib.import_module(_library)

#: The shipped function of every patched attribute, as first seen unpatched (a
#: library imported later joins when it is first seen).
SHIPPED: dict[tuple[type, str], object] = {}
_previous: list[str] = []


def _patched_now() -> list[str]:
    changed = []
    for (cls, name), fn in sources.patched_functions().items():
        marked = getattr(fn, sources.PATCH_MARK, False)
        shipped = SHIPPED.setdefault((cls, name), fn) if not marked else None
        if marked or (shipped is not None and shipped is not fn):
            # An owner is a class, or a module (aiohappyeyeballs.impl for aiohttp).
            owner = getattr(cls, "__module__", None)
            where = f"{owner}.{cls.__name__}" if owner else cls.__name__
            changed.append(f"{where}.{name}")
    return changed


_patched_now()


def _open_fds() -> set[int]:
    try:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # pragma: no cover - not Linux
        return set()


def _leftovers() -> list[str]:
    problems = []
    changed = _patched_now()
    if changed:
        problems.append(f"patched client-library functions remain: {changed}")
    if trace.instrumentation_active() or trace._GLOBAL:
        problems.append("a trace or recorder is still active")
    if httpx_trace.wait_default() is not None:
        problems.append("the 100-continue waiting mode is still on")
    return problems


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    """After a test's teardown: note what it left behind (the next test fails)."""
    problems = _leftovers()
    if problems:
        _previous.append(f"state leaked by {nodeid}: " + "; ".join(problems))


@pytest.fixture(autouse=True)
def _httpx_as_shipped() -> Iterator[None]:
    if _previous:
        message = _previous.pop()
        sources.stop()  # so that one leak fails one test, not all after it
        pytest.fail(message)
    yield


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_start_key] = (_open_fds(), set(threading.enumerate()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    start = session.stash.get(_start_key, None)
    if start is None:
        return
    fds, threads = start
    leaked_threads = [
        t for t in threading.enumerate() if t not in threads and t.is_alive()
    ]
    leaked_fds = sorted(_open_fds() - fds)
    details = []
    for fd in leaked_fds:
        try:
            details.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue  # closed meanwhile (the listdir handle itself, say)
    if leaked_threads or details:
        message = (
            f"session left behind threads {[t.name for t in leaked_threads]} "
            f"and file descriptors {details}"
        )
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ISOLATION FAILURE: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_start_key = pytest.StashKey[tuple[set[int], set[threading.Thread]]]()


# -- the client-library axis -----------------------------------------------------

CORE = {"httpx": "httpcore", "httpx2": "httpcore2"}
INSTALLED = [lib for lib in HTTPX_LIBRARIES if importlib.util.find_spec(lib)]


@pytest.fixture(params=INSTALLED)
def httpx_lib(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """httpx or httpx2 (and its httpcore) in place of the test module's ``httpx``
    (and ``httpcore``) for this test."""
    from pytest_httptrace.server import _Endpoint  # TestServer's and RawServer's

    module = importlib.import_module(request.param)
    core = importlib.import_module(CORE[request.param])
    for name, value in (("httpx", module), ("httpcore", core)):
        if name in vars(request.module):
            monkeypatch.setattr(request.module, name, value)
    monkeypatch.setattr(_Endpoint, "default_lib", request.param)
    return module
