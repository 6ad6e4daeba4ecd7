#!/usr/bin/env python3
"""Record what real Sentry clients send, as replayable fixtures in ``tests/fixtures/envelopes/``.

    scripts/record_fixtures.py                                   # every client, latest versions
    scripts/record_fixtures.py --only python                     # the installed sentry-sdk only
    scripts/record_fixtures.py --only python --python-sdk 'sentry-sdk==2.80.0'   # a new version
    scripts/record_fixtures.py --only node --node-sdk 10.5.0     # an older @sentry/node
    scripts/record_fixtures.py --verify-only                     # rebuild the manifest only

A recording server on 127.0.0.1 (a free port) keeps every request as ``NAME.bin`` (the body byte for
byte, still compressed) beside ``NAME.json`` (method, path, query, headers) and answers
``200 {"id": ...}`` as Sentry does. Each client runs its scenarios against it, each a small program
written the way a user would (see the tables below), from a throwaway directory: the Python SDK in
this interpreter (or a venv, for another version), sentry-sdk 1.x in a venv, ``@sentry/node`` and
``@sentry/cli`` installed with npm. A client's fixtures go to ``<client>-<version>/``, so a new
version lands beside the old ones.

Then every fixture, old and new, is replayed (``shim.cli.replay``) into a fresh ``shim serve``, one
server per scenario, its fixtures in order; what was stored is written to ``manifest.json``, and
checked against what the scenario table says it must produce (the recorder fails if not). The
fixtures carry the recording key; a replay puts the live server's key in their place.
Review the manifest's diff before committing it: it is what the tests hold the server to.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shim.cli.replay import Target, read_inputs, replay  # noqa: E402
from shim.cli.replay_inputs import Inputs  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "envelopes"
RECORDING_KEY = "5ec0de0f1c7e5ec0de0f1c7e5ec0de0f"  # in the fixtures; never a server's key
VERIFY_KEY = "0e1f1ed0e1f1ed0e1f1ed0e1f1ed0e1f"
TIMEOUT = 120.0


# What each client does, and what shim must make of it. ``rows`` are error_logs in event-time order
# (each a subset of its columns); ``bugs`` the occurrence_count of each bug; ``check_ins`` the final
# status of each check-in.


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    run: str  # Python source, a Node scenario name, or sentry-cli arguments (JSON list)
    rows: tuple[dict[str, Any], ...] = ()
    bugs: tuple[int, ...] = ()
    check_ins: tuple[str, ...] = ()
    exit_code: int = 0


def python(options: str, component: str, body: str) -> str:
    return (f"import os\nimport sentry_sdk\n\nsentry_sdk.init(dsn=os.environ['SENTRY_DSN'], "
            f"server_name='recorder', {options})\nsentry_sdk.set_tag('component', {component!r})\n\n"
            + body.strip() + "\n")


GZIP = "_experiments={'transport_compression_algo': 'gzip'}"
BROTLI = "_experiments={'transport_compression_algo': 'br'}"
UNCOMPRESSED = "_experiments={'transport_compression_level': 0}"
# 2.x sends Sentry Logs only with enable_logs; 3.x always does and has no such option.
ENABLE_LOGS = "**({} if sentry_sdk.VERSION.startswith('3.') else {'enable_logs': True})"
CAPTURED = """
def read_page(number):
    raise ValueError(f"page {number} is empty")

try:
    read_page(3)
except ValueError:
    sentry_sdk.capture_exception()
"""
UNHANDLED = """
def handle_update(update):
    return update["message"]["text"]

handle_update({"update_id": 7})
"""
WARNING = 'sentry_sdk.capture_message("Disk almost full: 91% used on /data", level="warning")'
FATAL = """
def parse_receipt(number):
    raise RuntimeError(f"receipt {number} could not be parsed")

for number in NUMBERS:
    try:
        parse_receipt(number)
    except RuntimeError:
        sentry_sdk.capture_exception(level="fatal")
"""
CHECK_IN = """
from sentry_sdk.crons import capture_checkin

check_in_id = capture_checkin(monitor_slug="nightly-backup", status="in_progress")
capture_checkin(monitor_slug="nightly-backup", check_in_id=check_in_id, status="ok", duration=1.5)
"""
LOGS = """
sentry_sdk.logger.warning("Retrying upload of {file_name}", file_name="scan-0042.pdf",
                          attributes={"component": "uploader"})
sentry_sdk.logger.error("Upload of {file_name} failed after {attempts} attempts",
                        file_name="scan-0042.pdf", attempts=3, attributes={"component": "uploader"})
"""


def _row(level: str, component: str, error_type: str | None = None, item_type: str = "event",
         **more: Any) -> dict[str, Any]:
    return {"item_type": item_type, "log_level": level, "component": component,
            "error_type": error_type, **more}


PYTHON = (  # sentry-sdk 2.x and 3.x: envelopes, gzip or brotli
    Scenario("exception_gzip", "capture_exception() of a handled ValueError, gzip",
             python(GZIP, "ocr-analyser", CAPTURED),
             rows=(_row("error", "ocr-analyser", "ValueError", error_message="page 3 is empty"),)),
    Scenario("unhandled_br", "an uncaught KeyError (the excepthook reports it), brotli",
             python(BROTLI, "telegram-bot", UNHANDLED),
             rows=(_row("error", "telegram-bot", "KeyError"),), bugs=(1,), exit_code=1),
    Scenario("warning_message_br", "capture_message at warning level, brotli (the default)",
             python("", "cron-cleanup", WARNING),
             rows=(_row("warning", "cron-cleanup",
                        message="Disk almost full: 91% used on /data"),)),
    Scenario("fatal_twice_gzip", "the same RuntimeError captured twice at fatal level, gzip",
             python(GZIP, "receipt-ocr", FATAL.replace("NUMBERS", "(17, 18)")),
             rows=(_row("critical", "receipt-ocr", "RuntimeError"),) * 2, bugs=(2,)),
    Scenario("check_in_uncompressed", "a cron check-in, in_progress then ok, uncompressed",
             python(UNCOMPRESSED, "backup", CHECK_IN), check_ins=("ok",)),
    Scenario("logs_br", "two Sentry Logs records (warning, error), brotli",
             python(ENABLE_LOGS, "uploader", LOGS),
             rows=(_row("warning", "uploader", item_type="log",
                        message="Retrying upload of scan-0042.pdf"),
                   _row("error", "uploader", item_type="log"))),
)

PYTHON_LEGACY = (  # sentry-sdk 1.x: events to /store/ (gzip), check-ins as envelopes
    Scenario("exception_store", "capture_exception() of a handled ValueError, to /store/",
             python("", "ocr-analyser", CAPTURED),
             rows=(_row("error", "ocr-analyser", "ValueError", item_type="store"),)),
    Scenario("unhandled_store", "an uncaught KeyError (the excepthook reports it), to /store/",
             python("", "telegram-bot", UNHANDLED),
             rows=(_row("error", "telegram-bot", "KeyError", item_type="store"),), bugs=(1,),
             exit_code=1),
    Scenario("warning_message_store", "capture_message at warning level, to /store/",
             python("", "cron-cleanup", WARNING),
             rows=(_row("warning", "cron-cleanup", item_type="store"),)),
    Scenario("fatal_store", "a RuntimeError captured at fatal level, to /store/",
             python("", "receipt-ocr", FATAL.replace("NUMBERS", "(21,)")),
             rows=(_row("critical", "receipt-ocr", "RuntimeError", item_type="store"),),
             bugs=(1,)),
    Scenario("check_in_envelope", "a cron check-in, in_progress then ok (an envelope)",
             python("", "backup", CHECK_IN), check_ins=("ok",)),
)

NODE = (  # @sentry/node: the scenarios are in scripts/record_fixtures.js
    Scenario("exception", "captureException of a TypeError", "exception",
             rows=(_row("error", "pdf-renderer", "TypeError", workspace_id="ws-42",
                        error_message="page 3 has no layout"),)),
    Scenario("message", "captureMessage at warning with attachStacktrace (a synthetic exception "
             "without a type: a message)", "message",
             rows=(_row("warning", "pdf-renderer", message="Queue is 5000 jobs behind"),)),
    Scenario("fatal", "captureException of a SyntaxError at fatal level", "fatal",
             rows=(_row("critical", "pdf-renderer", "SyntaxError"),), bugs=(1,)),
    Scenario("unhandled", "an uncaught TypeError (onUncaughtException reports it at fatal level, "
             "exits 1)", "unhandled", rows=(_row("critical", "pdf-renderer", "TypeError"),),
             bugs=(1,), exit_code=1),
)

CLI = (  # sentry-cli send-event
    Scenario("send_event_warning", "send-event -m with a message argument, warning level",
             json.dumps(["-m", "Nightly export failed for %s", "-a", "workspace-7", "--level",
                         "warning", "--tag", "component:nightly-export"]),
             rows=(_row("warning", "nightly-export",
                        message="Nightly export failed for workspace-7"),)),
    Scenario("send_event_fatal", "send-event -m at fatal level", json.dumps(
        ["-m", "Database migration aborted", "--level", "fatal", "--tag", "component:migrations"]),
             rows=(_row("critical", "migrations"),), bugs=(1,)),
)


# The recording server.


def _decoded(body: bytes, encoding: str) -> bytes:
    with contextlib.suppress(Exception):
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "br":
            import brotli

            return bytes(brotli.decompress(body))
    return body


def _event_id(body: bytes, encoding: str) -> str | None:
    with contextlib.suppress(Exception):
        header = json.loads(_decoded(body, encoding).split(b"\n", 1)[0])
        return str(header["event_id"]).replace("-", "")
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        body = self._body()
        path, _, query = self.path.partition("?")
        record = {"method": "POST", "path": path, "query": query,
                  "headers": [[k, v] for k, v in self.headers.items()]}
        with self.server.lock:
            self.server.requests.append((record, body))
        event_id = _event_id(body, self.headers.get("Content-Encoding", ""))
        answer = json.dumps({"id": event_id} if event_id else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[dict[str, Any], bytes]] = []

    @property
    def dsn(self) -> str:
        return f"http://{RECORDING_KEY}@127.0.0.1:{self.server_address[1]}/1"

    def take(self) -> list[tuple[dict[str, Any], bytes]]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken


# The clients.


@dataclass
class Client:
    """A client installed somewhere: its fixtures directory name and how to run one scenario."""

    directory: str
    sdk: str
    scenarios: tuple[Scenario, ...]
    run: Callable[[Scenario, str, Path], subprocess.CompletedProcess[str]]


def _env(dsn: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "SHIM_"))}
    return {**env, "SENTRY_DSN": dsn, "HOME": str(home), "SENTRY_DISABLE_UPDATE_CHECK": "1"}


def _python_client(interpreter: str, work: Path) -> Client:
    version = subprocess.run([interpreter, "-c", "import sentry_sdk; print(sentry_sdk.VERSION)"],
                             capture_output=True, text=True, check=True).stdout.strip()

    def run(scenario: Scenario, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        program = cwd / f"{scenario.name}.py"
        program.write_text(scenario.run)
        return subprocess.run([interpreter, program.name], cwd=cwd, env=_env(dsn, cwd),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)

    scenarios = PYTHON if int(version.split(".")[0]) >= 2 else PYTHON_LEGACY
    return Client(f"sentry-python-{version}", f"sentry.python {version}", scenarios, run)


def _venv_python(spec: str, work: Path) -> str:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", spec, "brotli"], check=True, timeout=600,
                   capture_output=True, text=True)
    return str(venv / "bin" / "python")


def _npm_install(packages: list[str], work: Path) -> None:
    (work / "package.json").write_text('{"name": "recorder", "private": true}\n')
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
                   cwd=work, check=True, timeout=600, capture_output=True, text=True)


def _npm_version(work: Path, package: str) -> str:
    manifest = work / "node_modules" / package / "package.json"
    return str(json.loads(manifest.read_text())["version"])


def _node_client(spec: str, work: Path) -> Client:
    _npm_install([f"@sentry/node@{spec}"], work)
    shutil.copy(ROOT / "scripts" / "record_fixtures.js", work / "record_fixtures.js")
    version = _npm_version(work, "@sentry/node")

    def run(scenario: Scenario, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", "record_fixtures.js", scenario.run], cwd=work,
                              env=_env(dsn, cwd), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)

    return Client(f"sentry-javascript-node-{version}", f"sentry.javascript.node {version}",
                  NODE, run)


def _cli_client(spec: str, work: Path) -> Client:
    _npm_install([f"@sentry/cli@{spec}"], work)
    version = _npm_version(work, "@sentry/cli")
    binary = work / "node_modules" / ".bin" / "sentry-cli"

    def run(scenario: Scenario, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        args = [str(binary), "send-event", "--no-environ", *json.loads(scenario.run)]
        return subprocess.run(args, cwd=cwd, env=_env(dsn, cwd), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)

    return Client(f"sentry-cli-{version}", f"sentry-cli {version}", CLI, run)


def record(client: Client, recorder: Recorder, work: Path) -> dict[str, list[str]]:
    """Run every scenario of ``client``; write its fixtures; {scenario: fixture names}."""
    target = FIXTURES / client.directory
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    recorded: dict[str, list[str]] = {}
    for scenario in client.scenarios:
        cwd = work / client.directory / scenario.name
        cwd.mkdir(parents=True)
        recorder.take()
        result = client.run(scenario, recorder.dsn, cwd)
        requests = recorder.take()
        if result.returncode != scenario.exit_code or not requests:
            raise SystemExit(f"{client.directory} {scenario.name}: exit {result.returncode}, "
                             f"{len(requests)} requests\n{result.stdout}\n{result.stderr}")
        names = [scenario.name if len(requests) == 1 else f"{scenario.name}-{n}"
                 for n in range(1, len(requests) + 1)]
        for name, (headers, body) in zip(names, requests, strict=True):
            (target / f"{name}.bin").write_bytes(body)
            (target / f"{name}.json").write_text(_record_json(headers))
        recorded[scenario.name] = names
        print(f"recorded {client.directory}/{scenario.name}: {len(requests)} request(s)")
    return recorded


def _record_json(record: dict[str, Any]) -> str:
    """The request record, one header per line (readable, and small diffs)."""
    headers = ",\n".join(f"    {json.dumps(pair)}" for pair in record["headers"])
    head = {k: v for k, v in record.items() if k != "headers"}
    return json.dumps(head, indent=2)[:-2] + f',\n  "headers": [\n{headers}\n  ]\n}}\n'


# Verification: replay into a real shim and read back what it stored.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def shim_server(work: Path) -> Iterator[tuple[str, Path]]:
    """A fresh ``shim serve`` on a free port: (url, database path)."""
    data = Path(tempfile.mkdtemp(dir=work))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "SHIM_"))}
    env.update(SHIM_DATA_DIR=str(data), SHIM_PUBLIC_KEYS=VERIFY_KEY, SHIM_LOG_LEVEL="warning")
    process = subprocess.Popen([sys.executable, "-m", "shim", "serve", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("shim serve did not start") from None
                time.sleep(0.05)
        yield url, data / "shim.db"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def stored(db_path: Path) -> dict[str, Any]:
    """What the server stored, in the manifest's terms (the tests read it the same way)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute(
            "SELECT e.event_id, e.item_type, e.log_level, e.component, e.error_type, "
            "e.error_message, e.message, e.workspace_id, b.title AS bug FROM error_logs e "
            "LEFT JOIN bugs b ON b.id = e.related_bug_id ORDER BY e.created_at, e.rowid")]
        bugs = [dict(r) for r in db.execute(
            "SELECT title, severity, component, error_type, occurrence_count FROM bugs "
            "ORDER BY bug_number")]
        check_ins = [dict(r) for r in db.execute(
            "SELECT monitor_slug, status FROM check_ins ORDER BY created_at, rowid")]
        items = {r[0]: r[1] for r in db.execute(
            "SELECT item_type, sum(count) FROM item_counts GROUP BY item_type ORDER BY item_type")}
    finally:
        db.close()
    return {"error_logs": rows, "bugs": bugs, "check_ins": check_ins, "items": items}


def _send(url: str, inputs: Inputs) -> int:
    """Replay ``inputs``; the status they were answered with (all must be 2xx)."""
    summary = replay(inputs, Target(url, VERIFY_KEY))
    if not summary.ok:
        raise SystemExit(f"replay failed: {summary.as_json()}")
    return max(summary.statuses)


@dataclass
class Checked:
    fixtures: list[dict[str, Any]] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)


def verify_scenario(directory: str, names: list[str], scenario: Scenario | None,
                    work: Path) -> Checked:
    """Replay a scenario's fixtures in order into a fresh server, noting what each one adds."""
    checked = Checked()
    with shim_server(work) as (url, db_path):
        seen: set[str] = set()
        before: dict[str, Any] = {"items": {}}
        for name in names:
            path = FIXTURES / directory / f"{name}.bin"
            record = json.loads(path.with_suffix(".json").read_text())
            headers = {k.lower(): v for k, v in record["headers"]}
            status = _send(url, read_inputs([path]))
            now = stored(db_path)
            added = [r for r in now["error_logs"] if r["event_id"] not in seen]
            seen.update(r["event_id"] for r in added)
            checked.fixtures.append({
                "file": f"{directory}/{name}.bin",
                "endpoint": "store" if record["path"].rstrip("/").endswith("store") else "envelope",
                "content_encoding": headers.get("content-encoding", "identity"),
                "client": headers.get("user-agent") or _auth_client(headers),
                "bytes": path.stat().st_size,
                "expect": {"status": status, "items": _diff(now["items"], before["items"]),
                           "error_logs": added},
            })
            before = now
        checked.expect = {"bugs": now["bugs"], "check_ins": now["check_ins"],
                          "error_logs": len(now["error_logs"])}
    if scenario is not None:
        _check_intent(f"{directory}/{scenario.name}", scenario, now)
    return checked


def _auth_client(headers: dict[str, str]) -> str:
    match = re.search(r"sentry_client=([^,\s]+)", headers.get("x-sentry-auth", ""))
    return match.group(1) if match else ""


def _diff(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


def _check_intent(label: str, scenario: Scenario, now: dict[str, Any]) -> None:
    problems = []
    rows = now["error_logs"]
    if len(rows) != len(scenario.rows):
        problems.append(f"{len(rows)} error_logs rows, expected {len(scenario.rows)}")
    for row, wanted in zip(rows, scenario.rows, strict=False):
        wrong = {k: (row.get(k), v) for k, v in wanted.items() if row.get(k) != v}
        if wrong:
            problems.append(f"row {row['event_id']}: (stored, expected) {wrong}")
    counts = sorted(b["occurrence_count"] for b in now["bugs"])
    if counts != sorted(scenario.bugs):
        problems.append(f"bug occurrence counts {counts}, expected {sorted(scenario.bugs)}")
    statuses = [c["status"] for c in now["check_ins"]]
    if statuses != list(scenario.check_ins):
        problems.append(f"check-ins {statuses}, expected {list(scenario.check_ins)}")
    if problems:
        raise SystemExit(f"{label}: shim did not store what the scenario should produce:\n  "
                         + "\n  ".join(problems))


def verify_totals(work: Path) -> dict[str, Any]:
    """Everything replayed into one server, in the order ``shim replay DIR`` sends it."""
    inputs = read_inputs([FIXTURES])
    with shim_server(work) as (url, db_path):
        _send(url, inputs)
        now = stored(db_path)
    levels: dict[str, int] = {}
    for row in now["error_logs"]:
        levels[row["log_level"]] = levels.get(row["log_level"], 0) + 1
    return {"requests": len(inputs.requests), "error_logs": len(now["error_logs"]),
            "levels": dict(sorted(levels.items())), "items": now["items"],
            "bugs": sorted(({"title": b["title"], "occurrence_count": b["occurrence_count"]}
                            for b in now["bugs"]), key=lambda b: b["title"]),
            "check_ins": len(now["check_ins"])}


def _scenario_table(directory: str) -> tuple[Scenario, ...]:
    if directory.startswith("sentry-python-1."):
        return PYTHON_LEGACY
    if directory.startswith("sentry-python-"):
        return PYTHON
    if directory.startswith("sentry-javascript-node-"):
        return NODE
    return CLI if directory.startswith("sentry-cli-") else ()


def _fixture_groups() -> dict[str, dict[str, list[str]]]:
    """{client directory: {scenario: fixture names in recorded order}} from the files on disk."""
    groups: dict[str, dict[str, list[str]]] = {}
    for body in sorted(FIXTURES.glob("*/*.bin")):
        scenario = re.sub(r"-\d+$", "", body.stem)
        groups.setdefault(body.parent.name, {}).setdefault(scenario, []).append(body.stem)
    for scenarios in groups.values():
        for names in scenarios.values():
            names.sort(key=lambda n: int(n.rpartition("-")[2]) if "-" in n else 0)
    return groups


def write_manifest(work: Path, recorded: set[str], unavailable: dict[str, str]) -> None:
    old = FIXTURES / "manifest.json"
    previous = json.loads(old.read_text()) if old.exists() else {}
    missing = {k: v for k, v in previous.get("unavailable", {}).items() if k not in recorded}
    missing.update(unavailable)
    scenarios = []
    for directory, groups in _fixture_groups().items():
        table = {s.name: s for s in _scenario_table(directory)}
        for name, names in groups.items():
            checked = verify_scenario(directory, names, table.get(name), work)
            scenarios.append({"client": directory, "scenario": name,
                              "what": table[name].what if name in table else "",
                              "fixtures": checked.fixtures, "expect": checked.expect})
            print(f"verified {directory}/{name}")
    manifest = {
        "about": "Requests recorded from real Sentry clients by scripts/record_fixtures.py: "
                 "NAME.bin is the body as sent, NAME.json the method, path, query and headers. "
                 "They carry recording_key; a replay must put the server's key in its place "
                 "(shim replay does: X-Sentry-Auth, ?sentry_key=). Each scenario's fixtures, "
                 "posted in order to an empty server, store what 'expect' says; each fixture "
                 "adds its 'expect.error_logs' rows. 'totals' is all of them, in path order, "
                 "into one server (as `shim replay tests/fixtures/envelopes` sends them).",
        "recording_key": RECORDING_KEY,
        "unavailable": missing,
        "scenarios": scenarios,
        "totals": verify_totals(work),
    }
    old.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {old}")


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--only", default="python,python-legacy,node,cli",
                         help="clients to record, comma-separated (default: all four)")
    options.add_argument("--python-sdk", help="pip requirement for a sentry-sdk to record in a "
                         "venv (default: the one installed here)")
    options.add_argument("--legacy-python-sdk", default="sentry-sdk<2",
                         help="pip requirement for the 1.x SDK (default: %(default)s)")
    options.add_argument("--node-sdk", default="latest", help="@sentry/node version (npm)")
    options.add_argument("--cli", default="latest", help="@sentry/cli version (npm)")
    options.add_argument("--verify-only", action="store_true",
                         help="record nothing; replay the fixtures and rewrite the manifest")
    args = options.parse_args()
    unavailable: dict[str, str] = {}
    recorded: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="shim-record-") as tmp:
        work = Path(tmp)
        if not args.verify_only:
            builders: dict[str, Callable[[Path], Client]] = {
                "python": lambda w: _python_client(
                    _venv_python(args.python_sdk, w) if args.python_sdk else sys.executable, w),
                "python-legacy": lambda w: _python_client(
                    _venv_python(args.legacy_python_sdk, w), w),
                "node": lambda w: _node_client(args.node_sdk, w),
                "cli": lambda w: _cli_client(args.cli, w),
            }
            recorder = Recorder()
            threading.Thread(target=recorder.serve_forever, daemon=True).start()
            try:
                for name in (n.strip() for n in args.only.split(",")):
                    place = work / f"install-{name}"
                    place.mkdir()
                    try:
                        client = builders[name](place)
                    except (subprocess.SubprocessError, OSError) as exc:
                        detail = getattr(exc, "stderr", None) or exc
                        unavailable[name] = f"could not be installed or run here: {detail}"
                        print(f"skipped {name}: {unavailable[name]}", file=sys.stderr)
                        continue
                    record(client, recorder, work)
                    recorded.add(name)
            finally:
                recorder.shutdown()
        write_manifest(work, recorded, unavailable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
