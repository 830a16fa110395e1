"""`assistant ui` starts the Streamlit app headless on loopback and serves it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_assistant_ui_serves_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path), "LLM_PROVIDER": "extractive"}
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        body = b""
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    body = r.read()
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                time.sleep(0.5)
        assert body == b"ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"<html" in r.read().lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
