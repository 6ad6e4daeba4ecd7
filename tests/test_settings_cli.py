"""Settings are validated at start and name the bad variable; ``shim serve`` and ``shim dsn``
generate and keep a key when none is configured, and print the DSN to paste."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shim.settings import SETTINGS, Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.bug_level == "critical"
    assert settings.data_dir == Path("data")
    assert settings.database_url == "sqlite:///data/shim.db"
    assert settings.public_keys is None


def test_values_are_parsed() -> None:
    settings = Settings.from_env({
        "SHIM_PUBLIC_KEYS": "abc123, def456:7",
        "SHIM_BUG_LEVEL": "FATAL",
        "SHIM_PORT": "9001",
        "SHIM_DATA_DIR": "/srv/shim",
        "SHIM_CORS_ORIGINS": "https://a.example, https://b.example",
    })
    assert settings.public_keys == (("abc123", None), ("def456", "7"))
    assert settings.bug_level == "critical"
    assert settings.port == 9001
    assert settings.database_url == "sqlite:////srv/shim/shim.db"
    assert settings.cors_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(("variable", "value"), [
    ("SHIM_PORT", "eighty"),
    ("SHIM_PORT", "70000"),
    ("SHIM_BUG_LEVEL", "severe"),
    ("SHIM_MAX_BODY_BYTES", "-1"),
    ("SHIM_PUBLIC_KEYS", "bad key!"),
    ("SHIM_PUBLIC_KEYS", "abc:notanumber"),
    ("SHIM_PUBLIC_KEYS", " , "),
    ("SHIM_RELATED_LOGS", "0"),
])
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_every_setting_has_help_and_a_field() -> None:
    names = {f for f in Settings.__dataclass_fields__}
    for setting in SETTINGS:
        assert setting.env.startswith("SHIM_")
        assert setting.help.strip()
        assert setting.field in names


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    return {**env, "SHIM_DATA_DIR": str(tmp_path / "data"), **extra}


def test_serve_exits_non_zero_on_a_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "shim", "serve"], capture_output=True,
                            text=True, timeout=60, env=_env(tmp_path, SHIM_BUG_LEVEL="loud"))
    assert result.returncode == 2
    assert "SHIM_BUG_LEVEL" in result.stderr


def test_dsn_generates_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = subprocess.run([sys.executable, "-m", "shim", "dsn"], capture_output=True, text=True,
                           timeout=60, env=_env(tmp_path), check=True)
    second = subprocess.run([sys.executable, "-m", "shim", "dsn"], capture_output=True, text=True,
                            timeout=60, env=_env(tmp_path), check=True)
    key = (tmp_path / "data" / "public_key").read_text().strip()
    assert len(key) == 32
    assert first.stdout == second.stdout == f"DSN: http://{key}@127.0.0.1:8000/1\n"
    assert "generated" in first.stderr and "generated" not in second.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_the_dsn_and_listens_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "shim", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(tmp_path, SHIM_PUBLIC_KEYS="abc123:3"))
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line == f"DSN: http://abc123@127.0.0.1:{port}/3\n"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert (tmp_path / "data" / "shim.db").exists()
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    # uvicorn re-raises SIGTERM after a clean shutdown, so the exit status is -15.
    assert server.returncode in (0, -15)
    assert "Application shutdown complete" in stderr
