"""A real `cashscore serve` process on a free loopback port, for tests that need one."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def serve_process(
    models: Path, db: Path | None = None, env: dict[str, str] | None = None, args: list[str] | None = None
) -> Iterator[tuple[str, int]]:
    """A real `cashscore serve` process on a free loopback port; yields (base URL, pid) once ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "cashscore.cli", "serve", "--port", str(port), "--models", str(models)]
    if db is not None:
        command += ["--db", str(db)]
    command += args or []
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)
