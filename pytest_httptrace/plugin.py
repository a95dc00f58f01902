"""The pytest plugin (``-p httptrace``): options, markers and fixtures that delegate.

Everything heavy is imported inside the fixtures, so loading the plugin is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass


def pytest_report_header(config: pytest.Config) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from ._version import __version__

    try:
        httpx_version = version("httpx")
    except PackageNotFoundError:  # pragma: no cover - httpx is a dependency
        httpx_version = "not installed"
    return f"httptrace: {__version__}, httpx {httpx_version}"
