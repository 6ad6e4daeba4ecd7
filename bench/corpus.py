"""A corpus of real SDK wire bytes: what ``sentry_sdk`` would POST, recorded instead of sent.

The real SDK runs in this process with a transport that is ``HttpTransport`` minus the network: the
SDK builds, serialises and compresses each envelope through its own code path
(``_serialize_envelope``: gzip level 9, brotli quality 4, or none) and adds its own headers; the
transport keeps the body and the headers. The events come from real exceptions raised in ~20
generated call sites (a module written next to the corpus, so frames carry source context and
local variables), with ids, numbers and paths varying in the messages; plus warnings, events from
the logging integration (``logging.error`` / ``logging.critical``) and Sentry Logs envelopes.

Files written to ``OUT``: ``index.json`` (headers, per-encoding files, counts), one
``<encoding>.bin`` per encoding (``identity``, ``gzip``, ``br``: the same envelopes), each a run
of records ``<u32 body length><u32 rows>`` + body, where rows is what the envelope should become
in ``error_logs`` (one per event item, one per Sentry Logs record). Content is deterministic for a
seed; event ids and timestamps are the SDK's own (fresh on every generation).

    python -m bench.corpus --out /tmp/corpus --envelopes 20000 --seed 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import random
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import event_from_exception

KEY = "0123456789abcdef0123456789abcdef"  # the DSN key the corpus is sent with
PROJECT = "1"
ENCODINGS = ("identity", "gzip", "br")
RECORD = struct.Struct("<II")  # body length, expected error_logs rows
SITES = 20

# What a scanner fleet sends, by share of envelopes.
KINDS = {
    "exception": 40,          # sentry_sdk.capture_exception in an except block (handled)
    "unhandled": 5,           # an exception no one caught (excepthook mechanism): a bug
    "logging_exc": 15,        # log.error("...", exc_info=True): an event with a stack trace
    "logging_error": 10,      # log.error("cannot read %s", path): a message event
    "logging_critical": 5,    # log.critical(..., exc_info=True): a bug
    "warning": 10,            # sentry_sdk.capture_message(..., level="warning")
    "logs": 15,               # a Sentry Logs envelope of 1-20 records
}

EXCEPTIONS = ["ValueError", "KeyError", "RuntimeError", "LookupError", "PermissionError",
              "TimeoutError", "ConnectionError", "IndexError", "FileNotFoundError", "ScanError"]
MESSAGES = [
    "record {id} failed validation at page {n}",
    "user {uuid} not found in workspace {ws}",
    "timeout after {n} ms contacting 10.0.{a}.{b}:5432",
    "cannot parse invoice {id}: unexpected token at offset {n}",
    "chat {id} is rate limited for {n} s",
    "OCR confidence {a}.{b} below threshold on scan {uuid}",
    "file /srv/scans/{ws}/{id}.pdf vanished during read",
    "payment {hex} declined by gateway (code {n})",
]


def _site_source(site: int) -> str:
    """One call site: an entry function and a fixed chain of helpers ending in a raise."""
    depth = 16 + site % 13  # fixed per site: a call site always has the same frames
    exc = EXCEPTIONS[site % len(EXCEPTIONS)]
    template = MESSAGES[site % len(MESSAGES)]
    lines = [
        f"def site_{site}(job):",
        "    path = job['path']",
        "    rows = [{'line': i, 'text': job['name'] * 3, 'score': i / 7} for i in range(12)]",
        "    settings = {'retries': 3, 'timeout': 30.0, 'workspace': job['ws'], 'dry_run': False}",
        f"    return _site_{site}_0(job, rows, settings)",
        "",
    ]
    for step in range(depth):
        nxt = f"_site_{site}_{step + 1}(job, window or rows, settings)"
        lines += [
            f"def _site_{site}_{step}(job, rows, settings):",
            f"    offset = {step} * 17 + job['n']",
            "    window = rows[offset % len(rows):][:8]",
            f"    stage = 'stage-{step}-' + job['name']",
            f"    meta = {{'stage': {step}, 'attempt': job['attempt'], 'path': job['path'],",
            "            'ids': [job['id'], job['uuid']], 'seen': len(window)}",
            f"    cursor = {{'page': job['n'] + {step}, 'token': job['hex'] + job['uuid'][{step}:],",
            "              'started': job['id'] / 1000.0, 'host': job['ws'] + '.internal'}",
            f"    sample = [(job['id'] * (i + {step + 3})) % 999983 for i in range(8)]",
            f"    return {nxt}",
            "",
        ]
    message = "f" + repr(template.replace("{", "{job['").replace("}", "']}"))
    body = [f"def _site_{site}_{depth}(job, rows, settings):",
            "    total = sum(r['score'] for r in rows)",
            f"    message = {message}"]
    if site % 4 == 3:  # chained: the cause is a real error raised underneath
        body += ["    try:",
                 "        return {'scores': rows}[job['field']]",
                 "    except KeyError as cause:",
                 f"        raise {exc}(message) from cause"]
    else:
        body += [f"    raise {exc}(message)"]
    return "\n".join(lines + body) + "\n\n"


def write_sites(directory: Path) -> ModuleType:
    """Write and import the call-site module (a real file: the SDK reads its source lines)."""
    path = directory / "scanner_sites.py"
    source = ('"""Generated call sites for the benchmark corpus."""\n\n\n'
              "class ScanError(Exception):\n    pass\n\n\n"
              + "".join(_site_source(site) for site in range(SITES)))
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("scanner_sites", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scanner_sites"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Recorded:
    bodies: dict[str, bytes]
    headers: dict[str, str]
    rows: int
    items: Counter[str]


class RecordingTransport(HttpTransport):
    """``HttpTransport`` that records what it would send, synchronously, in order."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.recorded: list[Recorded] = []
        self._lock = threading.Lock()

    def capture_envelope(self, envelope: Envelope) -> None:
        with self._lock:  # no worker thread: the order of the corpus is the order of capture
            self._send_envelope(envelope)

    def _send_request(self, body: bytes, headers: dict[str, str], endpoint_type: Any,
                      envelope: Envelope | None = None) -> None:
        assert envelope is not None
        self._update_headers(headers)
        headers.pop("Content-Encoding", None)
        bodies = {}
        algo, level = self._compression_algo, self._compression_level
        try:
            for name in ENCODINGS:  # the SDK's own serialisation, once per encoding
                self._compression_algo = None if name == "identity" else name
                self._compression_level = {"identity": 0, "gzip": 9, "br": 4}[name]
                encoding, buffer = self._serialize_envelope(envelope)
                assert (encoding or "identity") == name
                bodies[name] = buffer.getvalue()
        finally:
            self._compression_algo, self._compression_level = algo, level
        assert bodies[algo or "identity"] == body or algo == "gzip"  # gzip embeds a timestamp
        items: Counter[str] = Counter(item.type or "" for item in envelope.items)
        rows = items["event"] + sum(int(item.headers.get("item_count", 0))
                                    for item in envelope.items if item.type == "log")
        self.recorded.append(Recorded(bodies, dict(headers), rows, items))


def _job(rng: random.Random) -> dict[str, Any]:
    return {
        "id": rng.randrange(10**5, 10**9), "n": rng.randrange(1, 5000), "a": rng.randrange(256),
        "b": rng.randrange(256), "uuid": f"{rng.getrandbits(128):032x}",
        "hex": f"{rng.getrandbits(48):012x}", "ws": f"ws-{rng.randrange(40)}",
        "name": rng.choice(["invoice", "receipt", "chat", "scan", "page", "batch"]),
        "path": f"/srv/scans/{rng.randrange(1000)}/{rng.randrange(10**6)}.pdf",
        "attempt": rng.randrange(1, 4), "field": "pages",
    }


COMPONENTS = ["ocr-analyser", "telegram-bot", "nightly-import", "invoice-parser", "mailer"]
LOGGERS = ["scanner.ocr", "bot.telegram", "cron.import", "scanner.invoice", "mail.outbox"]


def _capture(kind: str, rng: random.Random, sites: ModuleType) -> None:
    """One envelope's worth of activity, in its own scope (breadcrumbs do not pile up)."""
    site = rng.randrange(SITES)
    job = _job(rng)
    component = rng.randrange(len(COMPONENTS))
    log = logging.getLogger(LOGGERS[component])
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("component", COMPONENTS[component])
        scope.set_tag("workspace_id", job["ws"])
        scope.set_tag("request_id", f"{rng.getrandbits(64):016x}")
        scope.set_extra("job", {k: job[k] for k in ("id", "path", "attempt")})
        for step in range(rng.randrange(20, 60)):  # breadcrumbs via the logging integration
            log.info("step %d: fetched page %d of %s (%d bytes, etag %x)", step,
                     rng.randrange(200), job["path"], rng.randrange(10**7), rng.getrandbits(40))
        if kind == "logs":
            for _ in range(rng.randint(1, 20)):
                level = rng.choice(["info", "info", "warning", "error"])
                getattr(sentry_sdk.logger, level)(
                    "processed {name} {id} in {ms} ms", name=job["name"],
                    id=rng.randrange(10**6), ms=rng.randrange(5000),
                    attributes={"component": COMPONENTS[component]})
            client = sentry_sdk.get_client()
            assert client.log_batcher is not None
            client.log_batcher.flush()
            return
        if kind == "warning":
            sentry_sdk.capture_message(
                f"queue {job['name']} is {job['n']} items behind (workspace {job['ws']})",
                level="warning")
            return
        if kind == "logging_error":
            log.error("cannot read %s after %d attempts", job["path"], job["attempt"])
            return
        try:
            getattr(sites, f"site_{site}")(job)
        except Exception as exc:
            if kind == "exception":
                sentry_sdk.capture_exception(exc)
            elif kind == "unhandled":
                client = sentry_sdk.get_client()
                # 3.x reads the client's options itself; 2.x is given them.
                more = {"client_options": client.options} if SDK_MAJOR < 3 else {}
                event, hint = event_from_exception(
                    exc, mechanism={"type": "excepthook", "handled": False}, **more)
                event["level"] = "error"
                sentry_sdk.capture_event(event, hint=hint)
            elif kind == "logging_exc":
                log.error("job %s failed", job["id"], exc_info=True)
            else:
                log.critical("job %s crashed", job["id"], exc_info=True)


SDK_MAJOR = int(sentry_sdk.VERSION.split(".", 1)[0])


def _logging_options() -> dict[str, Any]:
    """The same logging behaviour on either sentry-sdk major: Sentry Logs on for
    ``sentry_sdk.logger``, stdlib records at INFO as breadcrumbs and at ERROR as events, none as
    Sentry Logs. 2.x names the breadcrumb level ``level`` and needs ``enable_logs``; 3.x sends
    logs unasked, names the Sentry Logs level ``level`` and turns events off unless asked."""
    if SDK_MAJOR >= 3:
        return {"integrations": [LoggingIntegration(level=None, event_level=logging.ERROR,
                                                    breadcrumb_level=logging.INFO)]}
    return {"enable_logs": True,
            "integrations": [LoggingIntegration(level=logging.INFO, event_level=logging.ERROR,
                                                sentry_logs_level=None)]}


def generate(out: Path, envelopes: int, seed: int) -> dict[str, Any]:
    """Run the SDK, record ``envelopes`` envelopes, write the corpus files; return the index."""
    out.mkdir(parents=True, exist_ok=True)
    sites = write_sites(out)
    rng = random.Random(seed)
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.INFO)
    sentry_sdk.init(
        dsn=f"http://{KEY}@127.0.0.1:9/{PROJECT}",
        transport=RecordingTransport,
        send_client_reports=False,
        project_root=str(out),  # the generated sites count as in-app
        server_name="scanner-host-1",
        release="scanner@1.4.2",
        environment="production",
        **_logging_options(),
    )
    client = sentry_sdk.get_client()
    transport = client.transport
    assert isinstance(transport, RecordingTransport)
    kinds: Counter[str] = Counter()
    names, weights = list(KINDS), list(KINDS.values())
    began = time.perf_counter()
    while len(transport.recorded) < envelopes:
        kind = rng.choices(names, weights)[0]
        kinds[kind] += 1
        _capture(kind, rng, sites)
    client.close(timeout=2)
    recorded = transport.recorded[:envelopes]
    headers = recorded[0].headers
    assert all(r.headers == headers for r in recorded), "headers differ between envelopes"
    files = []
    for encoding in ENCODINGS:
        name = f"{encoding}.bin"
        with open(out / name, "wb") as f:
            for r in recorded:
                f.write(RECORD.pack(len(r.bodies[encoding]), r.rows))
                f.write(r.bodies[encoding])
        sizes = [len(r.bodies[encoding]) for r in recorded]
        files.append({"name": name, "encoding": encoding, "envelopes": len(recorded),
                      "bytes": sum(sizes), "mean_bytes": round(sum(sizes) / len(sizes))})
    items: Counter[str] = Counter()
    for r in recorded:
        items.update(r.items)
    index = {
        "sdk": f"sentry.python/{sentry_sdk.VERSION}", "seed": seed, "key": KEY,
        "project": PROJECT, "headers": headers, "envelopes": len(recorded),
        "rows": sum(r.rows for r in recorded), "kinds": dict(kinds), "items": dict(items),
        "files": files, "seconds": round(time.perf_counter() - began, 1),
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


@dataclass(frozen=True)
class Body:
    data: bytes
    rows: int


def read_corpus(directory: Path, encoding: str) -> tuple[dict[str, Any], list[Body]]:
    """The index and the bodies of one encoding, in order."""
    index = json.loads((directory / "index.json").read_text())
    data = (directory / f"{encoding}.bin").read_bytes()
    return index, list(_records(data))


def _records(data: bytes) -> Iterator[Body]:
    offset = 0
    while offset < len(data):
        length, rows = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        yield Body(data[offset:offset + length], rows)
        offset += length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--envelopes", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    index = generate(args.out, args.envelopes, args.seed)
    print(json.dumps({k: v for k, v in index.items() if k != "headers"}, indent=2))


if __name__ == "__main__":
    main()
