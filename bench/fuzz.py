"""A coverage-guided (atheris / libFuzzer) run over the envelope parser, the pure ingest core and the
whole HTTP app in-process, seeded with the request bodies recorded from real SDKs.

Targets (each a function of one input's bytes; any exception it lets out is a crash):

- ``envelope``: ``parse_envelope`` refuses with ``InvalidEnvelope`` only; what it accepts has at
  most ``MAX_ITEMS`` items, each with a type, and frames the same items again once written back
  with explicit lengths.
- ``ingest``: parse, then ``ingest_envelope`` (normalise, group, bug policy) with no store; and,
  when the bytes are one JSON value, ``ingest_store``. Only 4xx ``ShimError``\\s may leave, no item
  may end in an exception the core swallows and logs, and every row survives the backup log's
  serialisation (``batch_lines`` / ``parse_line``).
- ``http``: the ASGI app through Starlette's ``TestClient`` on a temporary SQLite store. The first
  four bytes choose the path, the Content-Encoding (the body compressed by the harness, or sent as
  it is under a claimed encoding), the Content-Type and where the key comes from; the rest is the
  body. Never a 500 (or 503), never an exception logged, and every refusal is the JSON error shape.

A worker process runs libFuzzer (shim's modules instrumented as they are imported); this one
prepares the seed corpus (the fixtures decoded, copied to a temporary directory: the fixtures are
never touched), bounds memory and time, and prints a summary. The target functions need no atheris:
``tests/test_fuzz_corpus.py`` replays the kept corpus through them.

    python -m bench.fuzz --target envelope --seconds 300
    python -m bench.fuzz --target http --seconds 300 --corpus /tmp/http-corpus \\
        --merge-into /tmp/http-minimised
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli
import orjson
import zstandard

try:
    import atheris  # type: ignore[import-untyped]  # only the fuzz run itself needs it
except ImportError:
    atheris = None

INSTRUMENT = "BENCH_FUZZ_WORKER"  # the work directory, set for the worker: instrument shim, fuzz

with (atheris.instrument_imports(include=["shim"]) if atheris and os.environ.get(INSTRUMENT)
      else contextlib.nullcontext()):
    from shim.app import create_app
    from shim.core.auth import Keys
    from shim.core.envelope import MAX_ITEMS, parse_envelope
    from shim.core.errors import InvalidEnvelope, ShimError
    from shim.core.items import Ingested, Limits, ingest_envelope, ingest_store
    from shim.settings import Settings
    from shim.writer.log import batch_lines, parse_line

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "envelopes"
TARGETS = ("envelope", "ingest", "http")
RECEIVED = datetime(2025, 1, 1, tzinfo=UTC)  # a fixed time: a replayed input gives the same rows
# Caps small enough for inputs of at most --max-len bytes (16 KiB) to pass them.
LIMITS = Limits(bug_level="critical", max_event_bytes=8192)
HEX32 = re.compile(r"[0-9a-f]{32}")


class Broken(Exception):
    """A property a target checks does not hold for this input."""


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def no_logged_errors() -> Iterator[None]:
    """Fail when shim logs an error during the block: the core swallows an item's unexpected
    exception (so the envelope's other items survive) and only logs it; that is still our bug."""
    handler = _Kept()
    logger = logging.getLogger("shim")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records:
        first = handler.records[0]
        raise Broken(f"shim logged: {first.getMessage()}") from (
            first.exc_info[1] if first.exc_info else None)


def _refused(exc: ShimError) -> None:
    if not 400 <= exc.status < 500:
        raise Broken(f"{type(exc).__name__} with status {exc.status}") from exc


# -- envelope -------------------------------------------------------------------------------------

def check_envelope(data: bytes) -> None:
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope:
        return
    if len(envelope.items) > MAX_ITEMS:
        raise Broken(f"{len(envelope.items)} items parsed; the limit is {MAX_ITEMS}")
    event_id = envelope.headers.get("event_id")
    if event_id is not None and not (isinstance(event_id, str) and HEX32.fullmatch(event_id)):
        raise Broken(f"envelope event_id {event_id!r} is not normalised")
    if any(not item.type for item in envelope.items):
        raise Broken("an item without a type was accepted")
    try:
        again = b"".join(
            [orjson.dumps(envelope.headers) + b"\n"]
            + [orjson.dumps({**item.headers, "length": len(item.payload)}) + b"\n" + item.payload
               + b"\n" for item in envelope.items])
    except orjson.JSONEncodeError:  # deeper than orjson writes (it reads deeper): no round trip
        return
    reparsed = parse_envelope(again)
    if reparsed.problem or [(i.type, i.payload) for i in reparsed.items] != [
            (i.type, i.payload) for i in envelope.items]:
        raise Broken(f"written back with lengths, the items parse differently ({reparsed.problem})")


# -- ingest ---------------------------------------------------------------------------------------

def _check_batch(ingested: Ingested) -> None:
    for problem in ingested.problems:
        if not 400 <= int(problem["status"]) < 500:
            raise Broken(f"item problem with status {problem['status']}: {problem}")
    batch = ingested.batch
    for line in batch_lines(batch):  # what the backup log writes and `shim restore` reads back
        try:
            parse_line(line)
        except (ValueError, TypeError, KeyError) as exc:
            raise Broken(f"backup line does not read back: {line[:200]!r}") from exc
    for row in batch.error_logs:
        if not HEX32.fullmatch(row.event_id) or not row.fingerprint:
            raise Broken(f"row with event_id {row.event_id!r}, fingerprint {row.fingerprint!r}")


def check_ingest(data: bytes) -> None:
    with no_logged_errors():
        try:
            envelope = parse_envelope(data)
        except ShimError as exc:
            _refused(exc)
        else:
            _check_batch(ingest_envelope(envelope, "1", RECEIVED, LIMITS))
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        try:
            _check_batch(ingest_store(event, "1", RECEIVED, LIMITS))
        except ShimError as exc:
            _refused(exc)


# -- http -----------------------------------------------------------------------------------------

KEY = "5ec0de0f1c7e5ec0de0f1c7e5ec0de0f"  # the fixtures' recording key: their `dsn` headers name it
PATHS = ("/api/1/envelope/", "/api/1/store/", "/api/2/envelope/", "/api/x1/envelope/",
         "/api/1/store", "/healthz")


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


# (Content-Encoding header, what the harness does to the body). The compressed ones reach the
# parser; the claimed ones feed the fuzzer's bytes to the decoders themselves.
ENCODINGS: tuple[tuple[str | None, Callable[[bytes], bytes]], ...] = (
    (None, lambda b: b),
    ("gzip", lambda b: gzip.compress(b, mtime=0)),
    ("deflate", zlib.compress),
    ("br", lambda b: brotli.compress(b, quality=1)),
    ("zstd", _zstd),
    ("gzip, br", lambda b: brotli.compress(gzip.compress(b, mtime=0), quality=1)),
    ("gzip", lambda b: b),
    ("deflate", lambda b: b),
    ("br", lambda b: b),
    ("zstd", lambda b: b),
    ("x-gzip, identity", lambda b: b),
    ("compress", lambda b: b),
)
CONTENT_TYPES = (None, "application/x-sentry-envelope", "application/json",
                 "text/plain;charset=UTF-8", "multipart/form-data; boundary=x")
AUTHS = ("header", "query", "dsn", "wrong")  # "dsn": no key but the envelope header's `dsn`
ALLOWED = frozenset({200, 400, 401, 403, 404, 405, 408, 413, 429})
HEAD = 4  # selector bytes before the body


def http_input(path: str, encoding: int, content_type: str | None, auth: str,
               body: bytes) -> bytes:
    """The fuzz input that sends ``body`` to ``path`` (``encoding`` indexes ``ENCODINGS``)."""
    return bytes([PATHS.index(path), encoding, CONTENT_TYPES.index(content_type),
                  AUTHS.index(auth)]) + body


class HttpTarget:
    """Sends one input to the app and checks the answer."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, data: bytes) -> None:
        head, body = data[:HEAD].ljust(HEAD, b"\0"), data[HEAD:]
        path = PATHS[head[0] % len(PATHS)]
        header, encode = ENCODINGS[head[1] % len(ENCODINGS)]
        content_type = CONTENT_TYPES[head[2] % len(CONTENT_TYPES)]
        auth = AUTHS[head[3] % len(AUTHS)]
        headers = {"Content-Encoding": header, "Content-Type": content_type,
                   "X-Sentry-Auth": {"header": f"Sentry sentry_key={KEY}, sentry_version=7",
                                     "wrong": "Sentry sentry_key=0000"}.get(auth)}
        params = {"sentry_key": KEY} if auth == "query" else None
        with no_logged_errors():
            response = self.client.post(path, content=encode(body), params=params,
                                        headers={k: v for k, v in headers.items() if v})
        status = response.status_code
        if status not in ALLOWED:
            raise Broken(f"status {status} for {path} ({header}, {content_type}, {auth}): "
                         f"{response.text[:300]}")
        try:
            answer = response.json()
        except ValueError:
            raise Broken(f"status {status} with a body that is not JSON: "
                         f"{response.content[:200]!r}") from None
        if status >= 400 and not (isinstance(answer, dict) and isinstance(answer.get("detail"), str)
                                  and isinstance(answer.get("code"), str) and answer["code"]):
            raise Broken(f"status {status} without the error shape: {answer!r}")
        if status == 200 and not (isinstance(answer, dict) and (
                "id" not in answer or HEX32.fullmatch(str(answer["id"])))):
            raise Broken(f"status 200 with {answer!r}")


@contextlib.contextmanager
def http_target(data_dir: Path) -> Iterator[HttpTarget]:
    """The app on a fresh SQLite store in ``data_dir``, its lifespan running for the block."""
    from starlette.testclient import TestClient

    settings = Settings.from_env({
        "SHIM_DATA_DIR": str(data_dir), "SHIM_MAX_BODY_BYTES": "12288",
        "SHIM_MAX_DECODED_BYTES": "24576", "SHIM_MAX_EVENT_BYTES": "8192",
        "SHIM_RATE_LIMIT_PER_KEY": "0", "SHIM_RATE_LIMIT": "0"})
    # raise_server_exceptions: an exception escaping the app is raised here, so it is a crash.
    with TestClient(create_app(settings, Keys(((KEY, "1"),)))) as client:
        yield HttpTarget(client)


# -- seeds ----------------------------------------------------------------------------------------

def recorded_bodies() -> list[tuple[str, str, bytes]]:
    """(name, endpoint, decoded body) of every recorded fixture."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    decode: dict[str, Callable[[bytes], bytes]] = {
        "identity": lambda b: b, "gzip": gzip.decompress, "br": brotli.decompress}
    return [(fixture["file"], fixture["endpoint"],
             decode[fixture["content_encoding"]]((FIXTURES / fixture["file"]).read_bytes()))
            for scenario in manifest["scenarios"] for fixture in scenario["fixtures"]]


def seeds(target: str) -> dict[str, bytes]:
    """The seed corpus of a target, by file name."""
    found: dict[str, bytes] = {}
    for name, endpoint, body in recorded_bodies():
        stem = name.replace("/", "__").removesuffix(".bin")
        if target != "http":
            found[stem] = body
            continue
        if endpoint == "store":
            path, auth = "/api/1/store/", "query"
        else:  # the key in the envelope header instead, as a tunnel sends it
            path, auth = "/api/1/envelope/", "dsn"
            header, _, items = body.partition(b"\n")
            body = orjson.dumps({**orjson.loads(header), "dsn": f"http://{KEY}@localhost/1"}
                                ) + b"\n" + items
        found[f"{stem}-identity"] = http_input(path, 0, None, "header", body)
        found[f"{stem}-gzip"] = http_input(path, 1, "application/json", auth, body)
        found[f"{stem}-br-sent"] = http_input(path, 8, None, "header", brotli.compress(body))
    if target == "http":  # small bodies that decode past the cap, in each encoding, sent as they are
        zeros = b"\0" * 100_000
        for index, bomb in ((6, gzip.compress(zeros)), (7, zlib.compress(zeros)),
                            (8, brotli.compress(zeros)), (9, _zstd(zeros))):
            found[f"bomb-{index}"] = http_input(PATHS[0], index, None, "header", bomb)
    return found


# -- the run --------------------------------------------------------------------------------------

# Words of the protocol for libFuzzer to splice in (-dict): byte mutations alone rarely spell the
# keys that open the deeper paths (exception groups, custom fingerprints, %-templates, check-ins).
DICTIONARY = (
    *(f'"{key}":' for key in (
        "event_id", "type", "length", "dsn", "level", "logger", "message", "logentry",
        "formatted", "params", "exception", "values", "value", "module", "stacktrace", "frames",
        "function", "filename", "abs_path", "lineno", "in_app", "mechanism", "handled",
        "exception_id", "parent_id", "source", "threads", "fingerprint",
        "tags", "extra", "contexts", "trace", "trace_id", "user", "request", "breadcrumbs",
        "timestamp", "release", "environment", "server_name", "sdk", "items", "body",
        "attributes", "severity_number", "monitor_slug", "status", "check_in_id", "duration",
        "monitor_config", "component", "workspace_id", "request_id", "password")),
    *(f'"{value}"' for value in (
        "event", "log", "check_in", "transaction", "attachment", "fatal", "critical", "error",
        "warning", "in_progress", "ok", "exceptions[0]", "exceptions[1]", "chained", "__cause__",
        "{{ default }}", "{{ type }}", "%s", "%d", "%(name)s", "%.3f", "%*d", "logger.name",
        "sentry.message.template", "0123456789abcdef0123456789abcdef")),
    "true", "false", "null", "[]", "{}", "\r\n",
)


def _dictionary_file(path: Path) -> Path:
    """The dictionary in libFuzzer's format: one quoted token a line, bytes escaped as \\xNN."""
    path.write_text("".join(
        '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}"
                      for c in token) + '"\n' for token in DICTIONARY))
    return path


def _worker(target: str, libfuzzer_args: list[str]) -> None:
    """Run libFuzzer on one target in this (instrumented) process; it exits the process."""
    work = Path(os.environ[INSTRUMENT])
    running = contextlib.ExitStack()  # never closed: libFuzzer ends the process, not this function
    if target == "http":
        one_input: Callable[[bytes], None] = running.enter_context(
            http_target(Path(tempfile.mkdtemp(prefix="http-", dir=work))))
    else:
        one_input = check_envelope if target == "envelope" else check_ingest
    # libFuzzer runs argv[0] again for -merge (and -fork): a script that comes back here.
    atheris.Setup([str(work / f"{target}-worker"), *libfuzzer_args], one_input)
    atheris.Fuzz()


STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
PROGRESS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)")


def _run_worker(target: str, libfuzzer_args: list[str], work: Path,
                log: Path) -> tuple[int, dict[str, int]]:
    """The worker's exit status and what it reported (libFuzzer's final stats and progress)."""
    stats: dict[str, int] = {}
    script = work / f"{target}-worker"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m bench.fuzz --target {target} "
                      '--worker -- "$@"\n')
    script.chmod(0o755)
    with open(log, "w") as out, subprocess.Popen(
            [str(script), *libfuzzer_args], cwd=ROOT, env={**os.environ, INSTRUMENT: str(work)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace") as worker:
        assert worker.stdout is not None
        for line in worker.stdout:
            out.write(line)
            if not line.startswith(("INFO: Instrumenting", "#")) or " pulse " in line:
                sys.stderr.write(line)  # not each new unit: progress every so often is enough
            if match := STAT.match(line):
                stats[match.group(1)] = int(match.group(2))
            elif match := PROGRESS.match(line):
                stage = "inited" if match.group(2) == "INITED" else "last"
                stats[f"{stage}_cov"], stats[f"{stage}_ft"] = map(int, match.group(3, 4))
    return worker.returncode, stats


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--runs", type=int, default=-1, help="stop after N inputs (-1: no limit)")
    parser.add_argument("--seconds", type=int, default=60, help="stop after S seconds")
    parser.add_argument("--corpus", type=Path, help="corpus directory, kept and grown across runs "
                        "(default: a temporary one); the seeds are read beside it, not copied in")
    parser.add_argument("--merge-into", type=Path, help="afterwards, write a minimal corpus with "
                        "the same coverage into this (empty or new) directory")
    parser.add_argument("--artifacts", type=Path, default=Path(tempfile.gettempdir()) / "shim-fuzz",
                        help="where crashing inputs are kept (default: %(default)s)")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--max-len", type=int, default=16384, help="largest input, in bytes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("libfuzzer", nargs="*", help="more libFuzzer flags, after --")
    args = parser.parse_args()
    if args.worker:
        _worker(args.target, args.libfuzzer)
        return
    if atheris is None:
        parser.error("atheris is not installed: pip install atheris")

    args.artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shim-fuzz-") as tmp:
        work = Path(tmp)
        seed_dir = work / "seeds"
        seed_dir.mkdir()
        for name, data in seeds(args.target).items():
            (seed_dir / name).write_bytes(data)
        corpus = args.corpus or work / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        before = len(list(corpus.iterdir()))
        prefix = args.artifacts / f"{args.target}-"
        crashes_before = set(args.artifacts.glob(f"{args.target}-*"))
        common = [f"-rss_limit_mb={args.rss_limit_mb}", f"-timeout={args.timeout}",
                  f"-max_len={args.max_len}", f"-artifact_prefix={prefix}",
                  f"-dict={_dictionary_file(work / 'protocol.dict')}", *args.libfuzzer]
        started = time.monotonic()
        status, stats = _run_worker(args.target, [
            str(corpus), str(seed_dir), f"-max_total_time={args.seconds}", f"-runs={args.runs}",
            "-print_final_stats=1", *common], work, work / "fuzz.log")
        elapsed = time.monotonic() - started
        crashes = sorted(set(args.artifacts.glob(f"{args.target}-*")) - crashes_before)
        if crashes:
            shutil.copy(work / "fuzz.log", args.artifacts / f"{args.target}.log")
        merged = None
        if args.merge_into and not crashes:
            args.merge_into.mkdir(parents=True, exist_ok=True)
            _run_worker(args.target, ["-merge=1", str(args.merge_into), str(corpus),
                                      str(seed_dir), *common], work, work / "merge.log")
            merged = sorted(p for p in args.merge_into.iterdir() if p.is_file())
        print(f"target {args.target}: {stats.get('number_of_executed_units', 0)} runs in "
              f"{elapsed:.0f} s ({stats.get('average_exec_per_sec', 0)}/s), "
              f"peak RSS {stats.get('peak_rss_mb', 0)} MB")
        print(f"coverage: {stats.get('inited_cov', 0)} -> {stats.get('last_cov', 0)} edges, "
              f"{stats.get('inited_ft', 0)} -> {stats.get('last_ft', 0)} features; "
              f"{stats.get('new_units_added', 0)} new units; corpus {before} -> "
              f"{len(list(corpus.iterdir()))} files (+{len(list(seed_dir.iterdir()))} seeds)")
        if merged is not None:
            print(f"merged: {len(merged)} files, {sum(p.stat().st_size for p in merged)} bytes "
                  f"in {args.merge_into}")
        print(f"crashes: {len(crashes)}" + "".join(f"\n  {p}" for p in crashes)
              + (f"\n  log: {args.artifacts / f'{args.target}.log'}" if crashes else ""))
        if status and not crashes:
            print(f"the fuzzer exited with status {status}; see the output above")
        sys.exit(1 if crashes or status else 0)


if __name__ == "__main__":
    main()
