"""A real ``redis-server`` for tests: started on 127.0.0.1 on a free port, stopped by its PID.

Reusable by any test package (fleet, dashboard, guard)::

    from redis_server import RedisServer

    with RedisServer() as server:
        url = server.url          # redis://127.0.0.1:PORT/0
        server.stop()             # an outage: the process is gone, the port stays reserved
        server.start()            # back, on the same port, empty (no persistence)

Nothing is saved to disk (``--save '' --appendonly no``), so a restart is a Redis restarted
empty. Readiness is checked with a raw ``PING`` over a socket, so the helper needs no client
library.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from types import TracebackType

__all__ = ["REDIS_SERVER", "RedisServer", "free_port"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ping(port: int, timeout: float = 0.2, tls: bool = False, password: str | None = None) -> bool:
    """True if a Redis server answers PING on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            if not tls:
                return _ping(raw, password)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
            with ctx.wrap_socket(raw) as s:
                return _ping(s, password)
    except OSError:
        return False


def _ping(s: socket.socket, password: str | None) -> bool:
    if password:
        s.sendall(f"AUTH {password}\r\n".encode())
        if not s.recv(64).startswith(b"+OK"):
            return False
    s.sendall(b"PING\r\n")
    return s.recv(64).startswith(b"+PONG")


def self_signed(directory: str) -> tuple[str, str]:
    """A self-signed certificate and key for 127.0.0.1 (``openssl req``), for TLS tests."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class RedisServer:
    """One ``redis-server`` process for a test; ``stop``/``start`` simulate an outage."""

    def __init__(
        self,
        port: int | None = None,
        startup_timeout: float = 10.0,
        *,
        tls: bool = False,
        password: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.tls = tls
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="rampup-redis-")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``rediss://:PASSWORD@...`` with TLS/a password)."""
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self.proc.pid if self.proc is not None else None

    def start(self) -> RedisServer:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.proc is not None:
            return self
        args = ["--port", str(self.port)]
        if self.tls:
            cert, key = self_signed(self._dir)
            args = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                cert,
                "--tls-auth-clients",
                "no",
            ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                *args,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        while not ping(self.port, tls=self.tls, password=self.password):
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"redis-server exited at start-up (port {self.port} taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL) and wait for it to exit."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        """Stop and start again: the server comes back empty."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
