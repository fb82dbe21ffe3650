"""The processes behind benchmarks/serve_load.py: a model store, Redis and BentoML servers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import redis
import requests
from omegaconf import OmegaConf

from aidetector.config.loading import compose_params

ROOT = Path(__file__).resolve().parents[1]
BENTOML = Path(sys.executable).parent / "bentoml"


class Stack:
    """The temporary model store, composed params, Redis, and the BentoML servers."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.params = work / "params.yaml"
        os.chdir(ROOT)
        self.params.write_text(
            OmegaConf.to_yaml(compose_params(["serve.gpus=0", "serve.allow_anonymous=true"]))
        )
        self.store = work / "store"
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.servers = 0
        self.processes: dict[str, subprocess.Popen] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "SENTRY_DSN")}
        env.update(
            BENTOML_HOME=str(self.store), AIDETECTOR_PARAMS=str(self.params),
            BENTOML_DO_NOT_TRACK="True", REDIS_URL="",
        )  # fmt: skip
        env.update(extra)
        return env

    def import_model(self, model_dir: Path, version: str) -> str:
        report = self.work / f"package-{version}.json"
        subprocess.run(
            [sys.executable, "-m", "aidetector.registry.bento", "--model-dir", str(model_dir),
             "--version", version, "--no-build", "--report", str(report)],
            env=self.env(), check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        return json.loads(report.read_text())["model_tag"]

    def flush_cache(self) -> None:
        redis.Redis(port=self.redis_port).flushall()

    @contextlib.contextmanager
    def serving(self, target: str, working_dir: Path, **env: str) -> Iterator[str]:
        """Run one server for the block; yield its URL."""
        url, process = self.serve(target, working_dir, **env)
        self.processes[url] = process
        try:
            yield url
        finally:
            del self.processes[url]
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)

    def serve(self, target: str, working_dir: Path, **env: str) -> tuple[str, subprocess.Popen]:
        """Start a server in its own BENTOML_HOME (bentoml serve wipes the metrics dir)."""
        port = free_port()
        self.servers += 1
        home = self.work / f"home{self.servers}"
        (home).mkdir()
        (home / "models").symlink_to(self.store / "models")
        log = (self.work / f"server{self.servers}.log").open("wb")
        process = subprocess.Popen(
            [str(BENTOML), "serve", target, "--host", "127.0.0.1", "--port", str(port),
             "--working-dir", str(working_dir)],
            env={**self.env(**env), "BENTOML_HOME": str(home)}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited; see {log.name}")
            try:
                if requests.get(url + "/readyz", timeout=5).status_code == 200:
                    return url, process
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{target} never became ready; see {log.name}")

    def cpu_seconds(self, url: str) -> float:
        """User + system CPU seconds used so far by the server at url and its workers."""
        root = psutil.Process(self.processes[url].pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def close(self) -> None:
        self.redis.terminate()


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
