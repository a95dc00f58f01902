"""Run our test server in its own process, for benchmarks whose server must not share
the client's interpreter (and GIL).

``python -m benchmarks._serve [--plain]`` starts `start_server`, writes the CA
certificate to a temporary PEM file, prints one JSON line ``{"url": ..., "ca": path}``
and serves until its standard input closes (or reads ``stop``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from types import TracebackType

from ._common import child_env, python_module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plain", action="store_true", help="no TLS")
    args = parser.parse_args()
    from pytest_httptrace.server import start_server

    with start_server(tls=not args.plain) as server:
        fd, ca_path = tempfile.mkstemp(prefix="httptrace-bench-ca-", suffix=".pem")
        os.close(fd)
        try:
            server.ca.cert_pem.write_to_path(ca_path)
            base = server.url("").rstrip("/")
            print(json.dumps({"url": base, "ca": ca_path}), flush=True)
            for line in sys.stdin:
                if line.strip() == "stop":
                    break
        finally:
            os.unlink(ca_path)


@dataclass
class ServerProcess:
    """A `main` process: ``.url`` (no trailing slash), ``.ca`` (PEM path)."""

    proc: subprocess.Popen[str]
    url: str
    ca: str

    @classmethod
    def start(cls, *, plain: bool = False) -> ServerProcess:
        args = ["--plain"] if plain else []
        proc = subprocess.Popen(
            python_module("benchmarks._serve", *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise RuntimeError(f"the server process exited with {proc.returncode}")
        info = json.loads(line)
        return cls(proc=proc, url=info["url"], ca=info["ca"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            except BrokenPipeError:  # pragma: no cover - it died already
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:  # pragma: no cover - defensive
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()
