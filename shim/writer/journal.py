"""Log first, then store: the one sequence every write goes through, from the server or the CLI.

``commit`` appends the batches to the backup log (fsynced), then, if the store has applied
everything before them, writes them to the store and moves the applied marker. When the store is
behind or down, the batches stay in the log and ``catch_up`` applies them later, in log order.
Both run under the log's lock, so the order of the log is the order of the store.

A batch the store refuses while otherwise working (a "poison" event) is set aside in
``rejected.jsonl``, so it can never block the events behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from shim.core.records import Batch, Stored
from shim.store import Store, StoreUnavailable
from shim.writer.held import Held, asked, sift
from shim.writer.log import BackupLog, parse_line

log = logging.getLogger("shim.journal")


def _store_trouble(exc: BaseException) -> bool:
    """A failure of the store itself, not of the data. Stores say so (``StoreUnavailable``, an
    ``OSError``); ``ping`` alone cannot tell: it writes nothing, so it succeeds on a full disk, and
    the events would be set aside as poison instead of waiting in the log for the store."""
    return isinstance(exc, OSError | MemoryError)


class Journaling(Protocol):
    """What the writer drives: the backup log and the store behind one interface, kept in this
    process (``Journal``) or in a child process of its own (``shim.writer.process.JournalProcess``).
    Called from one thread at a time, the writer's."""

    @property
    def overlaps_commits(self) -> bool:
        """Whether a commit mostly waits on another process, so the loop may go on meanwhile."""
        ...

    def commit(self, batches: Sequence[Batch]) -> list[list[Stored]] | None:
        """Log and apply ``batches``; per batch, what happened to each error_logs row (``None``:
        logged, the store not reached). Raises ``StoreUnavailable`` when nothing could be kept."""
        ...

    def lag(self) -> tuple[bool, int]:
        """Whether the store is behind the log, and by how many bytes."""
        ...

    def catch_up(self, max_lines: int = 2000) -> bool:
        """Apply up to ``max_lines`` of the log the store has not seen; True when it is level."""
        ...

    def summary(self) -> dict[str, Any]:
        """What ``/healthz`` says about the store."""
        ...

    def close(self) -> None: ...


class Journal:
    def __init__(self, backup: BackupLog, store: Store) -> None:
        self.backup = backup
        self.store = store

    @property
    def overlaps_commits(self) -> bool:
        """Whether the writer may commit while the event loop goes on (see shim/writer/group.py)."""
        return self.store.overlaps_commits

    def summary(self) -> dict[str, Any]:
        return self.store.summary()

    def close(self) -> None:
        self.store.close()

    def commit(self, batches: Sequence[Batch]) -> list[list[Stored]] | None:
        """Log and apply ``batches``, without what the store already holds (``shim.writer.held``: a
        retried or replayed event adds no line either); ``None`` when they are only logged (the
        store is behind, or cannot say what it holds).

        Raises ``OSError`` when the log itself cannot be written: then nothing was kept.
        """
        with self.backup.locked():
            applied, start = self.backup.applied(), self.backup.end()
            if applied != start:  # the log holds lines the store lacks: it cannot tell
                self.backup.append_batches(list(batches))
                return None
            try:
                held = self._held(batches)
            except StoreUnavailable:
                self.backup.append_batches(list(batches))
                return None
            sifted = sift(batches, held or Held())
            if not sifted.kept:  # all of it is stored already: nothing to log or apply
                return sifted.results([])
            end = self.backup.append_batches(sifted.kept)
            try:
                # What the store was just asked about it need not look up again.
                results = self._apply(sifted.kept, checked=held is not None)
            except StoreUnavailable:
                return None
            self.backup.mark_applied(end)
            return sifted.results(results)

    def _held(self, batches: Sequence[Batch]) -> Held | None:
        """What the store holds of the ids in ``batches``. Only the store's own failure stops the
        commit (``StoreUnavailable``); if the question fails otherwise (None), nothing is left out."""
        event_ids, check_in_ids = asked(batches)
        if not event_ids and not check_in_ids:
            return Held()
        try:
            return self.store.held(event_ids, check_in_ids)
        except Exception as exc:
            if _store_trouble(exc):
                log.warning("store unavailable (%s); events are kept in the backup log", exc)
                raise StoreUnavailable(str(exc)) from exc
            log.exception("could not ask the store which events it holds")
            return None

    def lag(self) -> tuple[bool, int]:
        """(behind, bytes of log not yet applied, counted within the marker's day file)."""
        applied, end = self.backup.applied(), self.backup.end()
        if applied == end:
            return False, 0
        if applied.file == end.file:
            return True, end.offset - applied.offset
        return True, end.offset

    def catch_up(self, max_lines: int = 2000) -> bool:
        """Apply up to ``max_lines`` log lines after the marker; True once nothing is left.

        Raises ``StoreUnavailable`` when the store still cannot take writes.
        """
        with self.backup.locked():
            applied = self.backup.applied()
            if applied == self.backup.end():
                return True
            if not self.store.ping():  # fail fast rather than wait out a lock per attempt
                raise StoreUnavailable("the store does not take writes")
            batches: list[Batch] = []
            position = applied
            for position, line in self.backup.read_from(applied):
                try:
                    batches.append(parse_line(line))
                except (ValueError, TypeError, KeyError) as exc:
                    log.error("skipping unreadable backup line at %s:%d: %s",
                              position.file, position.offset, exc)
                if len(batches) >= max_lines:
                    break
            if position == applied:
                return True
            if batches:
                self._apply(batches)
            self.backup.mark_applied(position)
            return position == self.backup.end()

    def _apply(self, batches: Sequence[Batch], checked: bool = False) -> list[list[Stored]]:
        try:
            return self.store.write(batches, checked=checked)
        except Exception as exc:
            if _store_trouble(exc) or not self.store.ping():
                log.warning("store unavailable (%s); events are kept in the backup log", exc)
                raise StoreUnavailable(str(exc)) from exc
        # The store works, so something in these batches is refused: find it, set it aside.
        results: list[list[Stored]] = []
        for batch in batches:
            try:
                results.extend(self.store.write([batch]))
            except Exception as exc:
                if _store_trouble(exc) or not self.store.ping():
                    raise StoreUnavailable(str(exc)) from exc
                log.exception("the store refused a batch; kept in rejected.jsonl")
                self.backup.reject(batch, f"{type(exc).__name__}: {exc}")
                results.append([Stored(r.event_id, duplicate=False, bug_id=None, bug_number=None)
                                for r in batch.error_logs])
        return results
