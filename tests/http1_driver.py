"""One small driver over the HTTP/1.1 clients urllib3 and requests, so that a
scenario is written once and runs with each (a later step folds them into the
shared client axis). Each call returns `Result` or raises the client's own error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

CLIENTS = ["requests", "urllib3"]


@dataclass
class Result:
    status: int
    body: bytes


def _close_pools(manager: urllib3.PoolManager) -> None:
    for key in list(manager.pools.keys()):
        pool = manager.pools.get(key)
        if pool is not None:
            pool.close()
    manager.clear()


class Driver:
    """``Driver("requests", server)`` or ``Driver("urllib3", server, maxsize=1)``.

    urllib3 runs with ``retries=False`` unless told otherwise (one attempt per call,
    as requests' default ``max_retries=0`` does for a dial)."""

    def __init__(self, kind: str, server: Any, *, trusted: bool = True, **kw: Any):
        self.kind, self.server = kind, server
        if kind == "requests":
            self.session = server.requests_session()
            if not trusted:
                self.session.verify = True  # the system store: not our CA
            self.error: type[BaseException] = requests.RequestException
        else:
            kw.setdefault("retries", False)
            if not trusted:
                kw["ca_certs"] = None
            self.pool = server.urllib3_pool_manager(**kw)
            self.error = urllib3.exceptions.HTTPError

    def url(self, path: str) -> str:
        return path if "://" in path else self.server.url(path)

    def request(
        self,
        method: str,
        path: str = "/",
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Result:
        if self.kind == "requests":
            r = self.session.request(method, self.url(path), data=body, headers=headers)
            return Result(r.status_code, r.content)
        u = self.pool.request(method, self.url(path), body=body, headers=headers)
        return Result(u.status, u.data)

    def get(self, path: str = "/", **kw: Any) -> Result:
        return self.request("GET", path, **kw)

    def stream(self, path: str = "/") -> Any:
        """A response whose body is not read (close it with `close_stream`)."""
        if self.kind == "requests":
            return self.session.get(self.url(path), stream=True)
        return self.pool.request("GET", self.url(path), preload_content=False)

    def read_stream(self, response: Any) -> bytes:
        if self.kind == "requests":
            data: bytes = response.content
            return data
        data = response.read()
        response.release_conn()
        return data

    def close_stream(self, response: Any) -> None:
        response.close()  # requests' close also returns the connection
        if self.kind == "urllib3":
            response.release_conn()

    def _managers(self) -> list[urllib3.PoolManager]:
        if self.kind == "requests":
            return [a.poolmanager for a in self.session.adapters.values()]  # type: ignore[attr-defined]
        return [self.pool]

    def wait_until_idle_dropped(self, timeout: float = 5.0) -> None:
        """Wait until every idle pooled connection looks dropped to urllib3.

        The server's close (FIN, TLS ``close_notify``) can still be in the
        loopback's queue when the server's script ends; under load, urllib3's
        checkout could then find the socket quiet and reuse it.
        """
        deadline = time.monotonic() + timeout
        while True:
            idle = [
                conn
                for manager in self._managers()
                for key in list(manager.pools.keys())
                if (pool := manager.pools.get(key)) is not None
                and pool.pool is not None
                for conn in list(pool.pool.queue)
                if conn is not None and conn.sock is not None
            ]
            if all(not conn.is_connected for conn in idle):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"pooled connections still look open: {idle}")
            time.sleep(0.001)

    def close(self) -> None:
        # urllib3 2.8's PoolManager.clear() (and so Session.close()) leaves closing
        # the pools' connections to the garbage collector, which an exception's
        # traceback can delay past the session's descriptor check: close them here.
        for manager in self._managers():
            _close_pools(manager)
        if self.kind == "requests":
            self.session.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
