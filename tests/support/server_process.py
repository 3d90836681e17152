"""``python -m server`` as a subprocess on a free loopback port, for tests that
need the real process: its own file-descriptor limit, its RSS and CPU, its logs."""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.servers import stop_process


class ServerProcess:
    """Start with ``with ServerProcess("--flag", env={...}) as server:``.

    ``nofile`` lowers the process's RLIMIT_NOFILE (as ``ulimit -n`` would);
    stderr (the logs) goes to a file, read with :meth:`logs`."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, nofile: int | None = None):
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.nofile = nofile
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")

    def __enter__(self) -> ServerProcess:
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", "0", *self.args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=self.env,
            preexec_fn=limit,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("twinstream serving on "):
            self.process.kill()
            self.process.wait(10)
            raise RuntimeError(f"server did not start: {line!r} {self.logs()}")
        self.port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self._log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, wait=15)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def logs(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        """Send raw bytes; everything the server answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
            return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def error_code(body: bytes) -> str:
    """The stable code of a JSON error body."""
    return str(json.loads(body)["error"]["code"])
