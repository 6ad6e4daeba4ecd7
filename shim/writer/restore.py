"""Rebuilding a database from the backup log.

``restore`` replays every line of the day files in order through the store's ordinary ``write``,
so bugs get the same numbers, counts, times and status history as the original. Lines are
idempotent (unique event ids and change ids), so restoring twice changes nothing. Per-hour item
counts are statistics, not events: they are not replayed (a second restore would double them).
A day file ending in a line without its newline (a crash mid-append, which no request was
answered for) is restored up to that line; the line is left out and named in ``torn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shim.core.records import Batch
from shim.store import Store
from shim.writer.log import BackupLog, Position, parse_line

CHUNK = 2000


@dataclass
class RestoreReport:
    lines: int = 0
    events: int = 0
    duplicates: int = 0
    check_ins: int = 0
    status_changes: int = 0
    merges: int = 0
    unreadable: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)


def restore(source: Path, store: Store) -> RestoreReport:
    """Apply every line under ``source`` (a ``bugs/logs`` directory) to ``store``."""
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a directory of backup logs")
    log = BackupLog(source)
    report = RestoreReport()
    chunk: list[Batch] = []

    def flush() -> None:
        for stored in store.write(chunk):
            for one in stored:
                if one.duplicate:
                    report.duplicates += 1
                else:
                    report.events += 1
        chunk.clear()

    for position, line in log.read_from(Position()):
        report.lines += 1
        try:
            batch = parse_line(line)
        except (ValueError, TypeError, KeyError) as exc:
            report.unreadable.append(f"{position.file} before byte {position.offset}: {exc}")
            continue
        if batch.item_counts:
            continue
        report.check_ins += len(batch.check_ins)
        report.status_changes += len(batch.status_changes)
        report.merges += len(batch.merges)
        chunk.append(batch)
        if len(chunk) >= CHUNK:
            flush()
    flush()
    report.torn = torn_tails(log)
    return report


def torn_tails(log: BackupLog) -> list[str]:
    """One line per day file that ends in a torn line: which file, from which byte, how long."""
    found = []
    for name in log.files():
        tail = log.torn_tail(name)
        if tail is not None:
            start, size = tail
            found.append(f"{name} from byte {start}: {size - start} bytes without a newline")
    return found
