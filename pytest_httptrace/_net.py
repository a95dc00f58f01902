"""Address helpers every source shares (no client library involved)."""

from __future__ import annotations

import ipaddress


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP literal (no name to resolve: no DNS hooks)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_port(host: str, port: int) -> str:
    """``host:port`` as Go writes it: an IPv6 address in brackets (``[::1]:443``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
