"""urllib3 and requests clients that trust a local test server's CA.

requests takes trust anchors only as a file path (``Session.verify``), so each CA is
written once, as PEM, to a private temporary directory that is removed when the
process (the pytest session, or one xdist worker) ends. urllib3 and requests are
imported here lazily, when a client is asked for.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests
    import trustme
    import urllib3

_lock = threading.Lock()
_dir: str | None = None
_bundles: dict[int, tuple[object, str]] = {}  # id(CA) -> (CA, path)


def _cleanup() -> None:
    global _dir
    with _lock:
        if _dir is not None:
            shutil.rmtree(_dir, ignore_errors=True)
        _dir = None
        _bundles.clear()


def ca_bundle(ca: trustme.CA) -> str:
    """The path of a PEM file holding ``ca``'s certificate (one file per CA)."""
    global _dir
    with _lock:
        known = _bundles.get(id(ca))
        if known is not None and known[0] is ca:
            return known[1]
        if _dir is None:
            _dir = tempfile.mkdtemp(prefix="httptrace-ca-")
            atexit.register(_cleanup)
        path = os.path.join(_dir, f"ca-{len(_bundles)}.pem")
        ca.cert_pem.write_to_path(path)
        _bundles[id(ca)] = (ca, path)
        return path


def requests_session(ca: trustme.CA | None, **attrs: Any) -> requests.Session:
    import requests

    session = requests.Session()
    # Proxy and CA variables of the environment never redirect test traffic nor
    # replace the CA (requests prefers REQUESTS_CA_BUNDLE to Session.verify).
    session.trust_env = False
    if ca is not None:
        session.verify = ca_bundle(ca)
    for name, value in attrs.items():
        if not hasattr(session, name):
            session.close()
            raise TypeError(f"requests.Session has no attribute {name!r}")
        setattr(session, name, value)
    return session


def pool_manager(ca: trustme.CA | None, **kwargs: Any) -> urllib3.PoolManager:
    import urllib3

    if ca is not None:
        kwargs.setdefault("ca_certs", ca_bundle(ca))
    return urllib3.PoolManager(**kwargs)
