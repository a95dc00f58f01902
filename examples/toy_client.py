"""A toy API client, as an application would write one, in two versions.

`ItemsClient` does it right. `NaiveItemsClient` has the bugs of the cookbook
(``docs/cookbook.md``), each one a mistake seen in real code. Every method works: the
responses are right, so ordinary tests pass with either client. Only the lifecycle of
the requests tells them apart, which is what ``test_toy_client.py`` asserts.
"""

from __future__ import annotations

import ssl
import time

import httpx


class ItemsClient:
    """A client for an "items" API: one pooled httpx client, HTTP/2 when offered."""

    def __init__(self, base_url: str, *, verify: ssl.SSLContext | bool = True) -> None:
        self.base_url = base_url
        self.verify = verify
        self._client = self._new_client()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, verify=self.verify, http2=True, trust_env=False
        )

    def get_item(self, path: str = "/") -> str:
        """One small GET, on the shared client (its connection is reused)."""
        return self._client.get(path).raise_for_status().text

    def content_length(self, path: str) -> int:
        """The size of a download, from its headers; the body is not read."""
        with self._client.stream("GET", path) as response:
            return int(response.headers["content-length"])

    def get_with_retry(self, path: str, attempts: int = 3) -> httpx.Response:
        """GET, retrying 503 answers on the same client (and connection)."""
        for attempt in range(attempts):
            response = self._client.get(path)
            if response.status_code != 503 or attempt == attempts - 1:
                return response
            time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def upload(self, path: str, data: bytes) -> httpx.Response:
        """POST a body. Expect: 100-continue is *not* sent: httpx never waits for it."""
        return self._client.post(path, content=data)

    def close(self) -> None:
        self._client.close()


class NaiveItemsClient(ItemsClient):
    """The same API with the cookbook's bugs. Its responses are all correct."""

    def _new_client(self) -> httpx.Client:
        # Bug: HTTP/2 was never enabled (httpx offers only HTTP/1.1 unless asked), so
        # concurrent requests each need a connection of their own.
        return httpx.Client(base_url=self.base_url, verify=self.verify, trust_env=False)

    def get_item(self, path: str = "/") -> str:
        # Bug: a client built per request. Every call pays DNS, connect and TLS.
        with httpx.Client(
            base_url=self.base_url, verify=self.verify, trust_env=False
        ) as client:
            return client.get(path).raise_for_status().text

    def content_length(self, path: str) -> int:
        # Bug: a streamed response that is never closed. Its connection stays
        # checked out of the pool (and its socket open) until the client is closed.
        request = self._client.build_request("GET", path)
        response = self._client.send(request, stream=True)
        return int(response.headers["content-length"])

    def get_with_retry(self, path: str, attempts: int = 3) -> httpx.Response:
        # Bug: "reset the session" before retrying. The retry dials and handshakes
        # again, the moment the server is already struggling.
        for attempt in range(attempts):
            response = self._client.get(path)
            if response.status_code != 503 or attempt == attempts - 1:
                return response
            self._client.close()
            self._client = self._new_client()
            time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def upload(self, path: str, data: bytes) -> httpx.Response:
        # Bug: Expect: 100-continue, meant to let the server refuse before the body
        # is sent. httpx does not wait for 100 Continue: the body goes out at once.
        return self._client.post(path, content=data, headers={"Expect": "100-continue"})
