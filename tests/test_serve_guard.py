"""``shim serve`` refuses to listen beyond this machine with only a generated key.

A generated key is printed to the console and kept in the data dir, which is fine when only this
machine can reach the server (loopback) and not when other machines can: then SHIM_PUBLIC_KEYS must
name the keys. Traffic in these tests only ever goes to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from shim.cli import is_loopback

KEY = "guard0123456789abcdef0123456789ab"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "SENTRY_"))}
    return {**env, "SHIM_DATA_DIR": str(tmp_path / "data"), **extra}


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("LOCALHOST", True),
    ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False), ("10.0.0.1", False),
    ("example.com", False), ("fe80::1", False), ("128.0.0.1", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("how", ["flag", "env", "env-ipv6"])
def test_a_non_loopback_host_without_keys_exits_2_naming_the_variable(
        tmp_path: Path, how: str) -> None:
    args, extra = {
        "flag": (["--host", "0.0.0.0"], {}),
        "env": ([], {"SHIM_HOST": "192.168.1.10"}),
        "env-ipv6": ([], {"SHIM_HOST": "::"}),
    }[how]
    result = subprocess.run([sys.executable, "-m", "shim", "serve", "--port", str(free_port()),
                             *args], capture_output=True, text=True, timeout=60,
                            env=_env(tmp_path, **extra))
    assert result.returncode == 2, result.stderr
    assert "SHIM_PUBLIC_KEYS" in result.stderr
    assert "loopback" in result.stderr
    assert "DSN:" not in result.stdout
    assert not (tmp_path / "data" / "public_key").exists()  # no key generated, nothing printed


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Started servers, stopped with SIGTERM at the end of the test."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _start(serve: list[subprocess.Popen[str]], env: dict[str, str], host: str,
           port: int) -> tuple[subprocess.Popen[str], str]:
    """Start ``shim serve --host host``; its first stdout line, once /healthz answers."""
    process = subprocess.Popen([sys.executable, "-m", "shim", "serve", "--host", host,
                                "--port", str(port)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    serve.append(process)
    assert process.stdout is not None
    first = process.stdout.readline()
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                assert r.status == 200
                return process, first
        except OSError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)


def test_a_non_loopback_host_with_keys_starts(tmp_path: Path,
                                              serve: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    _, first = _start(serve, _env(tmp_path, SHIM_PUBLIC_KEYS=KEY), "0.0.0.0", port)
    # 0.0.0.0 is not an address to send to: the printed DSN names 127.0.0.1 (or SHIM_PUBLIC_URL).
    assert first == f"DSN: http://{KEY}@127.0.0.1:{port}/1\n"
    assert not (tmp_path / "data" / "public_key").exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_without_keys_starts_with_a_generated_key(
        tmp_path: Path, serve: list[subprocess.Popen[str]], host: str) -> None:
    port = free_port()
    _, first = _start(serve, _env(tmp_path), host, port)
    key = (tmp_path / "data" / "public_key").read_text().strip()
    assert first == f"DSN: http://{key}@{host}:{port}/1\n"
