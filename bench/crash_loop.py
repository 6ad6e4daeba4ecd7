"""Crash loop: SIGKILL a real ``shim serve`` under load, restart it, and check nothing acknowledged is lost.

Each round starts ``python -m shim serve`` on a free 127.0.0.1 port with the same data dir and a fixed
key, runs several concurrent senders (plain ``http.client``, envelopes built with
``sentry_sdk.envelope.Envelope(...).serialize()``, a fresh ``event_id`` each; some critical events
grouped into a few bugs by a custom fingerprint), and SIGKILLs the server while requests are in flight,
at a point chosen in turn from these, its exact moment random:

- ``immediate``: a few milliseconds after the senders start;
- ``after_acks``: once the round has N acknowledged events (N random);
- ``mid_burst``: at a random moment within the first ~0.3 s of sending.

Events whose request failed (no answer) are resent in the next round, as an SDK would retry, so
replays of events that are already in the log (or the database) are exercised too. After every
kill the server is restarted on the same data dir; once ``/healthz`` reports the store caught up,
the checks run:

- every event answered 2xx is in ``error_logs`` exactly once;
- every event answered 2xx is in a backup log day file (``bugs/logs/YYYY-MM-DD.jsonl``) at least once;
- every bug's ``occurrence_count`` equals the number of ``error_logs`` rows pointing at it, and every
  stored critical event points at a bug.

The last restart is stopped cleanly (SIGTERM) and its output must hold no traceback. Exit status 1
if any check failed.

    python -m bench.crash_loop --kills 20
    python -m bench.crash_loop --kills 5 --senders 16 --seed 7 --json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sentry_sdk.envelope import Envelope, Item, PayloadRef

from bench.__main__ import free_port

KEY = "c0a5410094c0ffee0123456789abcdef"
PROJECT = "1"
MODES = ("immediate", "after_acks", "mid_burst")
BUG_GROUPS = 5  # critical events share these few fingerprints, so bugs get many occurrences
STARTUP_TIMEOUT = 20.0
CATCH_UP_TIMEOUT = 60.0
HEADERS = {"Content-Type": "application/x-sentry-envelope",
           "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={KEY}, sentry_client=crash-loop/1"}


def envelope_for(event_id: str, serial: int) -> bytes:
    """One event envelope; every third event is critical and belongs to one of a few bugs."""
    critical = serial % 3 == 0
    event: dict[str, Any] = {
        "event_id": event_id,
        "level": "fatal" if critical else "error",
        "platform": "python",
        "message": f"crash loop event {serial}",
        "tags": {"component": "crash-loop"},
        "exception": {"values": [{
            "type": "RuntimeError",
            "value": f"boom {serial}",
            "mechanism": {"type": "generic", "handled": True},
            "stacktrace": {"frames": [{"module": "bench.crash_loop", "function": "send",
                                       "lineno": serial % 100, "in_app": True}]},
        }]},
    }
    if critical:
        event["fingerprint"] = ["crash-loop", str(serial % BUG_GROUPS)]
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(payload=PayloadRef(json=event), type="event"))
    return envelope.serialize()


@dataclass
class Ledger:
    """What the senders know: the events answered 2xx, and those that got no answer."""

    acked: set[str] = field(default_factory=set)
    unanswered: list[tuple[str, int]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    serial: int = 0

    def next_event(self) -> tuple[str, int]:
        with self.lock:
            if self.unanswered:
                return self.unanswered.pop()
            self.serial += 1
            return uuid.uuid4().hex, self.serial


class Server:
    """``python -m shim serve`` on one data dir; killed with SIGKILL, or stopped with SIGTERM."""

    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        self.data_dir, self.port, self.log_path = data_dir, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "SHIM_"))}
        env.update(SHIM_DATA_DIR=str(self.data_dir), SHIM_PUBLIC_KEYS=KEY, SHIM_LOG_LEVEL="warning")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shim", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.health(lambda h: True, STARTUP_TIMEOUT)

    def health(self, ready: Any, timeout: float) -> dict[str, Any]:
        """Poll ``/healthz`` until ``ready(body)``; raise if the server exits or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"shim serve exited with {self.process.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2.0) as response:
                    last = json.loads(response.read())
                    if ready(last):
                        return last
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"/healthz not ready within {timeout}s (last answer: {last})")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def sender(port: int, ledger: Ledger, stop: threading.Event, round_acks: list[int]) -> None:
    """Post envelopes one after another until ``stop``; a failed request is left for a resend."""
    conn: http.client.HTTPConnection | None = None
    while not stop.is_set():
        event_id, serial = ledger.next_event()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", f"/api/{PROJECT}/envelope/", envelope_for(event_id, serial), HEADERS)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            with ledger.lock:
                ledger.unanswered.append((event_id, serial))
            if conn is not None:
                conn.close()
                conn = None
            time.sleep(0.005)
            continue
        with ledger.lock:
            ledger.statuses[response.status] += 1
            if 200 <= response.status < 300:
                ledger.acked.add(event_id)
                round_acks[0] += 1
            else:
                ledger.unanswered.append((event_id, serial))
    if conn is not None:
        conn.close()


def log_event_ids(log_dir: Path) -> tuple[Counter[str], int]:
    """Event ids of the complete lines of every day file, and how many torn tails there are."""
    seen: Counter[str] = Counter()
    torn = 0
    for path in sorted(log_dir.glob("[0-9]*-[0-9]*-[0-9]*.jsonl")):
        for line in path.read_bytes().splitlines(keepends=True):
            if not line.endswith(b"\n"):
                torn += 1
                continue
            data = json.loads(line)
            if data.get("kind") == "error_log":
                seen[data["row"]["event_id"]] += 1
    return seen, torn


def check(data_dir: Path, acked: set[str]) -> tuple[list[str], dict[str, int]]:
    """The durability checks against the database and the backup log; (problems, counts)."""
    problems: list[str] = []
    db = sqlite3.connect(f"file:{data_dir / 'shim.db'}?mode=ro", uri=True)
    try:
        stored = Counter(dict(db.execute(
            "SELECT event_id, count(*) FROM error_logs GROUP BY event_id").fetchall()))
        per_bug = dict(db.execute("SELECT related_bug_id, count(*) FROM error_logs"
                                  " WHERE related_bug_id IS NOT NULL GROUP BY related_bug_id"))
        bugs = db.execute("SELECT id, bug_number, occurrence_count FROM bugs").fetchall()
        (orphans,) = db.execute("SELECT count(*) FROM error_logs WHERE log_level = 'critical'"
                                " AND related_bug_id IS NULL").fetchone()
    finally:
        db.close()
    in_log, torn = log_event_ids(data_dir / "bugs" / "logs")

    missing = sorted(acked - set(stored))
    twice = sorted(e for e in acked if stored[e] > 1)
    not_logged = sorted(acked - set(in_log))
    if missing:
        problems.append(f"{len(missing)} acknowledged events not in error_logs, e.g. {missing[:3]}")
    if twice:
        problems.append(f"{len(twice)} acknowledged events stored more than once, e.g. {twice[:3]}")
    if not_logged:
        problems.append(f"{len(not_logged)} acknowledged events not in the backup log, "
                        f"e.g. {not_logged[:3]}")
    for bug_id, number, count in bugs:
        if per_bug.get(bug_id, 0) != count:
            problems.append(f"{number}: occurrence_count {count} but {per_bug.get(bug_id, 0)} "
                            "error_logs rows")
    if set(per_bug) - {b[0] for b in bugs}:
        problems.append("error_logs rows point at a bug that does not exist")
    if orphans:
        problems.append(f"{orphans} critical events have no bug")
    return problems, {"stored": sum(stored.values()), "log_lines": sum(in_log.values()),
                      "torn_tails": torn, "bugs": len(bugs)}


@dataclass
class Result:
    kills: int
    seed: int
    acked: int = 0
    stored: int = 0
    log_lines: int = 0
    torn_tails: int = 0
    bugs: int = 0
    resent: int = 0
    torn_after_kill: int = 0  # day files ending in a partial line right after a kill
    statuses: dict[str, int] = field(default_factory=dict)
    kill_points: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run(kills: int, senders: int = 8, seed: int | None = None, work: Path | None = None,
        verbose: bool = True) -> Result:
    """Kill the server ``kills`` times under load; check after every restart."""
    seed = random.randrange(10**6) if seed is None else seed
    rng = random.Random(seed)
    result = Result(kills=kills, seed=seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shim-crash-") as tmp:
        base = work or Path(tmp)
        server = Server(base / "data", free_port(), base / "server.log")
        ledger = Ledger()
        server.start()
        for round_no in range(1, kills + 1):
            mode = MODES[(round_no - 1) % len(MODES)]  # each kind in turn; the point is random
            resend = len(ledger.unanswered)
            result.resent += resend
            round_acks = [0]
            stop = threading.Event()
            threads = [threading.Thread(target=sender, args=(server.port, ledger, stop, round_acks),
                                        daemon=True) for _ in range(senders)]
            for thread in threads:
                thread.start()
            if mode == "immediate":
                time.sleep(rng.uniform(0, 0.005))
                point = "immediate"
            elif mode == "after_acks":
                target = rng.randint(1, 300)
                deadline = time.monotonic() + 30
                while round_acks[0] < target and time.monotonic() < deadline:
                    time.sleep(0.0005)
                point = f"after {round_acks[0]} acks"
            else:
                delay = rng.uniform(0.005, 0.3)
                time.sleep(delay)
                point = f"mid-burst at {delay * 1000:.0f} ms"
            server.kill()
            stop.set()
            for thread in threads:
                thread.join()
            torn_now = log_event_ids(server.data_dir / "bugs" / "logs")[1]
            result.torn_after_kill += torn_now
            server.start()
            health = server.health(lambda h: h["store"]["state"] == "ok"
                                   and h["store"]["lag_bytes"] == 0, CATCH_UP_TIMEOUT)
            problems, counts = check(server.data_dir, ledger.acked)
            result.kill_points.append(f"{mode}: {point}")
            result.problems.extend(f"round {round_no}: {p}" for p in problems)
            if verbose:
                print(f"kill {round_no:>3}/{kills} {point:<24} acked this round {round_acks[0]:>5}, "
                      f"total {len(ledger.acked):>6}; stored {counts['stored']:>6}, "
                      f"log lines {counts['log_lines']:>6}, torn tail after kill {torn_now}, "
                      f"bugs {counts['bugs']}, resent {resend}, health {health['status']}: "
                      f"{'OK' if not problems else '; '.join(problems)}", flush=True)
        # The events left unanswered by the last kill, sent once more to a server that stays up.
        while ledger.unanswered:
            result.resent += 1
            _send_one(server.port, ledger)
        problems, counts = check(server.data_dir, ledger.acked)
        result.problems.extend(f"final: {p}" for p in problems)
        code = server.stop()
        output = server.log_path.read_text(errors="replace")
        if "Traceback" in output:
            result.problems.append("the server logged a traceback (see its log)")
        if code not in (0, -signal.SIGTERM):
            result.problems.append(f"the last clean stop exited with {code}")
        result.acked = len(ledger.acked)
        result.statuses = {str(k): v for k, v in sorted(ledger.statuses.items())}
        result.stored, result.log_lines = counts["stored"], counts["log_lines"]
        result.torn_tails, result.bugs = counts["torn_tails"], counts["bugs"]
    result.seconds = round(time.monotonic() - began, 1)
    return result


def _send_one(port: int, ledger: Ledger) -> None:
    """Send one unanswered event again (the server is up and stays up); it must be answered."""
    event_id, serial = ledger.unanswered.pop()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/api/{PROJECT}/envelope/", envelope_for(event_id, serial),
                     HEADERS)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    ledger.statuses[response.status] += 1
    if 200 <= response.status < 300:
        ledger.acked.add(event_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="how many SIGKILLs (default 20)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)
    result = run(args.kills, args.senders, args.seed, verbose=not args.json)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"\nseed {result.seed}: {result.kills} kills in {result.seconds}s; "
              f"{result.acked} events acknowledged, {result.stored} stored, {result.log_lines} "
              f"log lines, {result.torn_after_kill} torn tails after kills ({result.torn_tails} left "
              f"at the end), {result.bugs} bugs, {result.resent} "
              f"resends; answers {result.statuses}")
        print("PASS: every acknowledged event is in error_logs once and in the backup log; "
              "occurrence counts match" if not result.problems else
              "FAIL:\n  " + "\n  ".join(result.problems))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
