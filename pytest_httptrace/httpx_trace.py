"""httpx instrumentation (placeholder until the hooks land)."""

from __future__ import annotations


def install() -> None:
    pass


def uninstall() -> None:
    pass
