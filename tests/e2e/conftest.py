"""Nubes processes started the way users start them, for end-to-end tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NUBES = str(Path(sys.executable).with_name("nubes"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nubes:
    """Runs `nubes` commands with one environment; keeps long-running ones."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [NUBES, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"nubes {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.run(*args, "--json").splitlines() if line]

    def start(self, *args: str, ready: str = "running") -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{args[0]}-{len(self.processes)}.log"
        log_file = log_path.open("wb")
        proc = subprocess.Popen(
            [NUBES, *args], env=self.env, cwd=self.workdir, stdout=log_file, stderr=log_file
        )
        self.processes.append((proc, log_path))
        deadline = time.monotonic() + 60
        while ready not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nubes {args[0]} did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.terminate()
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise

    def stop_all(self) -> None:
        for proc, _ in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['NUBES_HTTP_PORT']}"

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for _, path in self.processes)


@pytest.fixture
def nubes_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Nubes] = []

    def make(env: dict[str, str]) -> Nubes:
        base = {
            "NUBES_BIND": "127.0.0.1",
            "NUBES_FLAP_RAW_PORT": str(free_udp_port()),
            "NUBES_FLAP_BASE64_PORT": str(free_udp_port()),
            "NUBES_DTLS_PORT": str(free_udp_port()),
            "NUBES_HTTP_PORT": str(free_tcp_port()),
            "NUBES_DEVICE_REFRESH_SECONDS": "0.2",
        }
        instance = Nubes({**base, **env}, tmp_path)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.stop_all()
