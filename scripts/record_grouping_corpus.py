#!/usr/bin/env python3
"""Record the SDK-generated part of the grouping corpus (``tests/fixtures/grouping/``).

    scripts/record_grouping_corpus.py                 # sentry-sdk 2.x and 3.x, @sentry/node,
                                                      # @sentry/browser in Chromium
    scripts/record_grouping_corpus.py --only python   # the Python SDKs only (.venvs/sdk2, sdk3)
    scripts/record_grouping_corpus.py --node-dir DIR  # reuse a directory where npm installed
                                                      # @sentry/node and @sentry/browser

Each client runs the scenarios of ``scripts/grouping_corpus/<language>/`` (a small application
that fails the way real ones do) from a throwaway copy, so absolute paths differ between clients
and runs, as they do between machines. The browser SDK runs in Debian's Chromium (Playwright, no
browser download), its ES modules loaded through an import map, the page served twice from two
loopback origins under two content-hashed script names, as two builds of one site would be.
Every event the SDK would send is kept by ``before_send``, then slimmed to what grouping may read
(bulky keys such as breadcrumbs, modules, source context around a frame and local variables
dropped) and written, one event a line, with the group the scenario expects (its ``expect`` tag,
removed from the event). Review the diff before committing:
the expected groups are reasoned in ``tests/fixtures/grouping/manifest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scripts" / "grouping_corpus"
CORPUS = ROOT / "tests" / "fixtures" / "grouping"

EVENT_KEYS = ("event_id", "platform", "level", "logger", "transaction", "culprit", "message",
              "logentry", "exception", "threads", "stacktrace", "fingerprint", "tags")
FRAME_KEYS = ("filename", "abs_path", "module", "function", "raw_function", "symbol", "package",
              "platform", "lineno", "colno", "in_app", "context_line", "instruction_addr")


def slim_frames(holder: object) -> None:
    if not isinstance(holder, dict):
        return
    stacktrace = holder.get("stacktrace")
    if isinstance(stacktrace, dict) and isinstance(stacktrace.get("frames"), list):
        stacktrace["frames"] = [{k: f[k] for k in FRAME_KEYS if k in f}
                                for f in stacktrace["frames"] if isinstance(f, dict)]
        for key in list(stacktrace):
            if key != "frames":
                del stacktrace[key]


def slim(event: dict[str, Any], source: str) -> dict[str, Any]:
    """A corpus record: the event with only what grouping reads, and its expected group."""
    kept = {key: event[key] for key in EVENT_KEYS if key in event}
    tags = dict(kept.pop("tags", None) or {})
    group = tags.pop("expect")
    tags = {k: v for k, v in tags.items() if k in ("shard", "region")}
    if tags:
        kept["tags"] = tags
    for key in ("exception", "threads"):
        for value in (kept.get(key) or {}).get("values") or []:
            slim_frames(value)
            if isinstance(value, dict):
                value.pop("raw_stacktrace", None)
    slim_frames({"stacktrace": kept.get("stacktrace")})
    return {"group": group, "source": source, "platform": kept.get("platform"), "event": kept}


def run(command: list[str], cwd: Path, out: Path, check: bool = True) -> None:
    env = {**os.environ, "GROUPING_OUT": str(out)}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    if check and result.returncode != 0:
        raise SystemExit(f"{command} failed:\n{result.stdout}\n{result.stderr}")


def write(records: list[dict[str, Any]], name: str) -> None:
    path = CORPUS / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(ROOT)}: {len(records)} events")


def read(out: Path, source: str) -> list[dict[str, Any]]:
    return [slim(json.loads(line), source) for line in out.read_text().splitlines() if line]


def record_python(venv: Path) -> None:
    python = str(venv / "bin" / "python")
    version = subprocess.run([python, "-c", "import sentry_sdk; print(sentry_sdk.VERSION)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="grouping-py-") as scratch:
        work = Path(scratch) / "app"
        shutil.copytree(SCENARIOS / "python", work)
        out = Path(scratch) / "events.jsonl"
        run([python, "run.py", "all"], work, out)
        run([python, "run.py", "attach"], work, out)
        for number in ("7", "12"):  # the process dies of it: a non-zero exit is the point
            run([python, "run.py", "unhandled", "py-unhandled-read-page", number], work, out,
                check=False)
        write(read(out, f"sentry-python-{version}"), f"sentry-python-{version.split('.')[0]}")


def npm_install(work: Path) -> None:
    work.mkdir()
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                    "@sentry/node", "@sentry/browser"], cwd=work, check=True)


def record_node(work: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="grouping-node-") as scratch:
        for item in (SCENARIOS / "node").iterdir():
            target = work / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copy(item, target)
        version = json.loads((work / "node_modules/@sentry/node/package.json").read_text())["version"]
        out = Path(scratch) / "events.jsonl"
        run(["node", "run.js", "all"], work, out)
        for number in ("7", "12"):
            run(["node", "run.js", "unhandled", "js-unhandled-render", number], work, out,
                check=False)
        write(read(out, f"sentry-javascript-node-{version}"), "sentry-javascript-node")


BUILDS = ("3f2a1b9c", "77aa0b12")  # two builds of the site: its scripts' content hashes


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript", ".mjs": "text/javascript"}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on a free loopback port, for the time of the block."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def record_browser(work: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="grouping-browser-") as scratch:
        site = Path(scratch) / "site"
        shutil.copytree(SCENARIOS / "browser", site)
        (site / "node_modules").symlink_to(work / "node_modules")
        for build in BUILDS:
            shutil.copy(site / "static/js/cart.js", site / f"static/js/cart.{build}.js")
        package = json.loads((work / "node_modules/@sentry/browser/package.json").read_text())
        source = f"sentry-javascript-browser-{package['version']}"
        records = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            try:
                for build in BUILDS:
                    with serving(site) as origin:  # a new origin (port) for each build
                        page = browser.new_page()
                        page.goto(f"{origin}/index.html?build={build}")
                        page.wait_for_function("window.__done === true", timeout=60_000)
                        records += [slim(e, source) for e in page.evaluate("window.__events")]
                        page.close()
            finally:
                browser.close()
        write(records, "sentry-javascript-browser")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--only", choices=("python", "node", "browser"))
    options.add_argument("--node-dir", type=Path,
                         help="a directory where npm installed @sentry/node and @sentry/browser")
    args = options.parse_args()
    CORPUS.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "python"):
        for major in ("2", "3"):
            record_python(ROOT / ".venvs" / f"sdk{major}")
    if args.only == "python":
        return
    with tempfile.TemporaryDirectory(prefix="grouping-npm-") as scratch:
        node_dir = args.node_dir
        if node_dir is None:  # one install for both JavaScript clients
            node_dir = Path(scratch) / "npm"
            npm_install(node_dir)
        if args.only in (None, "node"):
            record_node(node_dir)
        if args.only in (None, "browser"):
            record_browser(node_dir)


if __name__ == "__main__":
    sys.exit(main())
