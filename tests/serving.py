"""Run an ASGI app under a real uvicorn server in a background thread (httpx's test habit),
or a whole gateway as its own process (``python -m gateway.cli serve``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gateway.embedded_redis import free_port


@contextmanager
def serve_in_thread(app: Any, *, startup_timeout_s: float = 120.0) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL; shut it down afterwards."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server exited during start-up (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {startup_timeout_s}s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_in_process(
    data_dir: Path, env: Mapping[str, str], *, startup_timeout_s: float = 120.0
) -> Iterator[str]:
    """Run ``genguard serve`` in a child process with ``env`` (``GENGUARD_*`` settings; the
    parent's are dropped) on a free port; yield its base URL once ``/healthz`` answers."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GENGUARD_")}
    child_env.update(env)
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--data-dir",
               str(data_dir)]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env
        )
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _answers(f"{base_url}/healthz"):
            if process.poll() is not None:
                raise RuntimeError(f"genguard serve exited:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"genguard serve did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield base_url
    finally:
        stop_process(process)


def stop_process(
    process: subprocess.Popen[Any], sig: signal.Signals = signal.SIGINT, timeout_s: float = 30
) -> None:
    """Ask ``process`` to stop with ``sig``; kill it if it has not exited within ``timeout_s``."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
