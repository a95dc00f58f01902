"""Certificates for the local test servers: one trustme CA, cheap TLS contexts.

The server's private key never stays on disk: Python's ``ssl`` can only load a key from
a file, so the leaf certificate and key are written to a private temporary directory
(mode 0700, files 0600) -- in ``/dev/shm`` (memory) where there is one, ~50 times faster
than a disk-backed ``/tmp`` -- loaded into the server's `ssl.SSLContext`, and the
directory is removed at once. trustme is imported here, lazily, when a certificate is
made.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trustme

__all__ = ["SERVER_IDENTITIES", "client_ssl_context", "new_ca", "server_ssl_context"]

#: The names the servers' leaf certificate is valid for: every way a test reaches them.
SERVER_IDENTITIES = ("localhost", "127.0.0.1", "::1")


def new_ca() -> trustme.CA:
    """Make a fresh trustme CA (ECDSA keys: ten times faster to make than RSA)."""
    import trustme

    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def server_ssl_context(
    ca: trustme.CA, *, alpn_protocols: Sequence[str] = ("h2", "http/1.1")
) -> ssl.SSLContext:
    """A server context presenting a fresh leaf for `SERVER_IDENTITIES`, signed by `ca`.

    Built from ``SSLContext(PROTOCOL_TLS_SERVER)`` rather than
    ``ssl.create_default_context``, which loads the system trust store (~25 ms) that a
    server without client certificates never uses.
    """
    leaf = ca.issue_cert(*SERVER_IDENTITIES)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 9113 §9.2: HTTP/2 needs 1.2+
    context.options |= ssl.OP_NO_COMPRESSION  # RFC 9113 §9.2.1
    context.set_alpn_protocols(list(alpn_protocols))
    private_dir = tempfile.mkdtemp(prefix="httptrace-tls-", dir=_memory_dir())
    try:
        key_path = os.path.join(private_dir, "key.pem")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as key_file:
            key_file.write(leaf.private_key_and_cert_chain_pem.bytes())
        context.load_cert_chain(key_path)
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
    return context


def _memory_dir() -> str | None:
    """``/dev/shm`` if this machine has a usable one, else None (the default temp)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts `ca` and nothing else, with hostname checks on.

    ``SSLContext(PROTOCOL_TLS_CLIENT)`` costs well under a millisecond where
    ``ssl.create_default_context()`` costs ~25 ms. Make one per client: httpcore sets
    the ALPN protocols on the context it is given, so a context shared between an
    HTTP/1.1 and an HTTP/2 client would be changed under the first one's feet.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context
