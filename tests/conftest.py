"""The client-library axis of the httpx tests.

A module that marks itself with ``pytestmark = pytest.mark.usefixtures("httpx_lib")``
runs each of its tests once per installed httpx flavour, httpx and httpx2: for the
duration of the test the module's ``httpx`` name is the flavour's module and the
local servers' ``client()`` / ``async_client()`` build that flavour's clients. The
tests themselves are written once, against ``httpx``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import pytest

from pytest_httptrace.server import HTTPX_LIBRARIES

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
