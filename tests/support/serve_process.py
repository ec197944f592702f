"""``claimdesk serve`` as a real child process, for tests that kill, restart or pair servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_serve(config: Path, *args: str) -> subprocess.Popen[str]:
    """``claimdesk --config config serve *args``, returned once it says it is running
    (any role prints "... is running"); its last output in the error when it does not."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--config", str(config), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CLAIMDESK_CONFIG"},
    )
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "is running" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("claimdesk serve did not start:\n" + "".join(seen[-20:]))


def stop_serve(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, as a service manager stops it; SIGKILL after 15 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
