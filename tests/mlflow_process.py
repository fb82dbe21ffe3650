"""A real `mlflow server` subprocess on 127.0.0.1 with a SQLite store, for tests.

Imports nothing heavy (no torch), so that light test packages can start one too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests


def free_port() -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, log_path: Path, what: str, timeout_s: float = 120
) -> None:
    """Poll url until it answers 200; fail the test with the log's tail if it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 1.0) -> None:
    """Stop a process started with start_new_session=True, and its children."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        # Uvicorn waits for idle keep-alive clients; test data is throwaway, so don't.
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def run_mlflow_server(root: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run `mlflow server` on SQLite under root; yield its URI; stop it afterwards."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # the CI machine has two cores
    ]
    process_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process_env.update(env or {})
    log_path = root / "server.log"
    with log_path.open("w") as log:
        # Own process group, so that stopping it also stops the uvicorn worker.
        process = subprocess.Popen(
            command,
            cwd=root,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, f"{uri}/health", log_path, "mlflow server")
        yield uri
    finally:
        stop_process_group(process)
