"""Shared fixtures for the end-to-end tests: a real ``shim serve`` on a free port, and real
``sentry_sdk`` clients run as child processes against it.

A server starts in about a third of a second, so every test gets its own server and its own data
directory: a test sees only its own rows and its own bug numbers, and grouping in one test can never
merge with an event of another.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import journal_pid as find_journal

PUBLIC_KEY = "e2e0123456789abcdef0123456789abc"
PROJECT_ID = "1"
SCRIPTS = Path(__file__).parent / "scripts"
STARTUP_TIMEOUT = 15.0
CHILD_TIMEOUT = 60.0
ROOT = Path(__file__).parent.parent

SDK_MAJORS = ("2", "3")
"""The sentry-sdk majors a scanner may run; every scanner-side test runs on each."""


def sdk_python(major: str) -> str:
    """The Python of the environment holding sentry-sdk ``major``.x and sdk_config, installed on
    their own as on a scanner machine (``scripts/envs`` builds ``.venvs/sdk2`` and ``.venvs/sdk3``
    from ``requirements/sdk2.txt`` / ``sdk3.txt``; a missing or stale one is built here)."""
    python = ROOT / ".venvs" / f"sdk{major}" / "bin" / "python"
    stamp = python.parent.parent / ".stamp"
    if not python.exists() or not stamp.exists():
        subprocess.run([str(ROOT / "scripts" / "envs")], check=True, cwd=ROOT)
    if not python.exists():  # never a skip: a missing SDK environment fails the run
        raise RuntimeError(f"no sentry-sdk {major}.x environment at {python}: run scripts/envs")
    return str(python)


@pytest.fixture(params=SDK_MAJORS, ids=lambda major: f"sdk{major}")
def sdk_major(request: pytest.FixtureRequest) -> str:
    """Each sentry-sdk major in turn (a test using it runs once per major)."""
    return str(request.param)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running ``shim serve``: where to send (``dsn``, ``url``) and where to look (``query``)."""

    url: str
    dsn: str
    data_dir: Path
    db_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def journal_pid(self) -> int | None:
        """The server's journal process (``shim.writer.process``), if it has one."""
        return find_journal(self.process.pid)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts, read through a read-only connection."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in db.execute(sql, params)]
        finally:
            db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A direct write, as an operator editing the database would do (e.g. resolving a bug)."""
        db = sqlite3.connect(self.db_path, timeout=30.0)
        try:
            with db:
                db.execute(sql, params)
        finally:
            db.close()

    def error_logs(self, where: str = "1", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """error_logs rows (all, or those matching ``where``) in event-time order."""
        return self.query(f"SELECT * FROM error_logs WHERE {where} ORDER BY created_at, rowid",
                          params)

    def bugs(self) -> list[dict[str, Any]]:
        """All bugs, oldest bug number first."""
        return self.query("SELECT * FROM bugs ORDER BY bug_number")

    def item_counts(self) -> dict[str, int]:
        """Items received by type (summed over days)."""
        return {r["item_type"]: r["n"] for r in self.query(
            "SELECT item_type, sum(count) AS n FROM item_counts GROUP BY item_type")}

    def log(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"shim serve exited with {process.returncode}:\n"
                               f"{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"shim serve did not answer /healthz within {STARTUP_TIMEOUT}s:\n"
                       f"{log_path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _clean_env() -> dict[str, str]:
    """The parent's environment without SENTRY_* / SHIM_* variables that would change behaviour."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SENTRY_", "SHIM_"))}


@contextlib.contextmanager
def start_server(data_dir: Path, log_path: Path, extra: dict[str, str] | None = None,
                 port: int | None = None, args: Sequence[str] = ()) -> Iterator[LiveServer]:
    """``python -m shim serve [ARGS]`` on ``port`` (default: a free one) with ``data_dir`` (new
    or existing); stopped with SIGTERM on exit, which must be clean and log no traceback."""
    port = port or free_port()
    env = {**_clean_env(), "SHIM_DATA_DIR": str(data_dir), "SHIM_PUBLIC_KEYS": PUBLIC_KEY,
           "SHIM_LOG_LEVEL": "info", **(extra or {})}
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "shim", "serve", "--port", str(port), *args],
            env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    journal: int | None = None
    try:
        _wait_healthy(url, process, log_path)
        journal = find_journal(process.pid)
        yield LiveServer(url=url, dsn=f"http://{PUBLIC_KEY}@127.0.0.1:{port}/{PROJECT_ID}",
                         data_dir=data_dir, db_path=data_dir / "shim.db", log_path=log_path,
                         process=process)
    finally:
        _stop(process)
    if journal is not None:  # it ends with the server (which waits for it), never left behind
        assert not Path(f"/proc/{journal}").exists(), "the journal process outlived the server"
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, f"the server logged an exception:\n{output}"
    # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean exit too.
    assert process.returncode in (0, -signal.SIGTERM), (
        f"shim serve exited with {process.returncode}:\n{output}")
    assert "Application shutdown complete" in output, output


@pytest.fixture
def live_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A fresh ``python -m shim serve`` with its own data dir; stopped with SIGTERM afterwards.

    Extra ``SHIM_*`` settings can be given with ``@pytest.mark.parametrize("live_server", [{...}],
    indirect=True)``. The test fails if the server logged a traceback.
    """
    extra: dict[str, str] = getattr(request, "param", None) or {}
    with start_server(tmp_path / "data", tmp_path / "server.log", extra) as server:
        yield server


def _child_env(dsn: str, env: dict[str, str] | None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SCRIPTS), os.environ.get("PYTHONPATH")) if p)
    return {**_clean_env(), "SENTRY_DSN": dsn, "PYTHONPATH": path, **(env or {})}


def run_script(code: str, dsn: str, env: dict[str, str] | None = None,
               timeout: float = CHILD_TIMEOUT, python: str = sys.executable,
               cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` and SENTRY_DSN set, as a user's script would run.

    The script calls ``sentry_sdk.init`` itself; the SDK flushes at exit and the server answers
    only after committing, so the rows are in the database once this returns. ``tests/scripts`` is
    on PYTHONPATH for the small ``probe`` helper.
    """
    return subprocess.run([python, "-c", code], env=_child_env(dsn, env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_scripts(codes: Sequence[str], dsn: str, env: dict[str, str] | None = None,
                timeout: float = CHILD_TIMEOUT, python: str = sys.executable,
                cwd: str | Path | None = None) -> list[subprocess.CompletedProcess[str]]:
    """Run several scripts at once (each ``python -c``); results in the order given."""
    children = [
        (code, subprocess.Popen([python, "-c", code], env=_child_env(dsn, env), cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for code in codes
    ]
    results = []
    for code, child in children:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        results.append(subprocess.CompletedProcess([python, "-c", code],
                                                   child.returncode, out, err))
    return results


def script(body: str) -> str:
    """An indented snippet as a script."""
    return textwrap.dedent(body).strip() + "\n"


def expect_ok(result: subprocess.CompletedProcess[str], returncode: int = 0) -> None:
    """The child exited with ``returncode`` and its SDK saw every envelope accepted."""
    assert result.returncode == returncode, result.stderr
    assert sdk_problems(result) == [], result.stderr


def sdk_problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The SDK's own warnings and errors (``debug=True``): refused statuses, rate limits, network
    failures, flush timeouts. An empty list means every envelope was answered 2xx."""
    return [line for line in result.stderr.splitlines()
            if re.search(r"\[sentry\] (WARNING|ERROR)", line)]


def script_stderr(result: subprocess.CompletedProcess[str]) -> str:
    """The child's stderr without the SDK's debug lines. Those come from the SDK's worker thread
    and can land inside a line the script is writing (Python prints a traceback's last line as the
    type, ": " and the value in separate writes), so they are cut out wherever they start."""
    return re.sub(r" ?\[sentry\] (DEBUG|INFO): [^\n]*\n", "", result.stderr)


def answers_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """What ``probe.print_answers()`` printed: one dict per request the SDK made."""
    for line in result.stdout.splitlines():
        if line.startswith("ANSWERS "):
            answers: list[dict[str, Any]] = json.loads(line.removeprefix("ANSWERS "))
            return answers
    raise AssertionError(f"the script printed no ANSWERS line:\n{result.stdout}\n{result.stderr}")


def shim_env(server: LiveServer, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an operator's ``shim`` command needs to see ``server``'s data."""
    return {**_clean_env(), "SHIM_DATA_DIR": str(server.data_dir), "SHIM_PUBLIC_KEYS": PUBLIC_KEY,
            "COLUMNS": "200", **(env or {})}


def run_shim(server: LiveServer, *args: str, env: dict[str, str] | None = None,
             timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m shim ARGS`` against ``server``'s data dir (while it runs)."""
    return subprocess.run([sys.executable, "-m", "shim", *args], env=shim_env(server, env),
                          capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def sdk_events(**options: Any) -> Iterator[list[dict[str, Any]]]:
    """Events a real SDK client would send, kept in-process (``before_send`` keeps each and
    drops it); the client is closed afterwards. ``options`` go to ``sentry_sdk.init``."""
    import sentry_sdk

    events: list[dict[str, Any]] = []

    def keep(event: Any, hint: Any) -> None:
        events.append(event)
        return None

    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", before_send=keep,
                    auto_enabling_integrations=False, **options)
    try:
        yield events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
