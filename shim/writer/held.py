"""What a commit leaves out because the store already holds it. Pure.

A retried event, or a replay of a backup log into the server that wrote it, must add nothing: no
row (event ids are unique, so the store would skip the rows anyway), and no line in the backup log,
which would otherwise grow with every replay. So before a commit is logged the journal asks the
store which of its ids it holds (``Store.held``) and ``sift`` takes those items out.

- An ``error_logs`` row is held when the store has its ``event_id``, or an earlier row of the same
  commit has it.
- A check-in is held when the store (or an earlier check-in of the commit) has its
  ``check_in_id`` finished (``ok`` or ``error``): a finished check-in is final, as in Sentry,
  which refuses to update a completed check-in. An ``in_progress`` check-in is held too when its
  id is already in progress. What is left is a real step: a new check-in, or the end of a running
  one.
- A batch's item counts lose the items taken out (one ``event`` per event row, one ``check_in``
  per check-in, its ``log`` count once none of its records is left), so a replay counts nothing
  again in ``item_counts`` either.

Each request is still answered: a row taken out is answered as a duplicate, as the store answers
one. Status changes are never taken out (their ids make applying one twice harmless, and they are
not sent by clients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shim.core.records import Batch, CheckIn, ErrorLog, Stored

FINISHED = ("ok", "error")


@dataclass(frozen=True)
class Held:
    """What the store holds of a commit's ids: event ids, and each check-in id's status."""

    event_ids: frozenset[str] = frozenset()
    check_ins: dict[str, str] = field(default_factory=dict)


def asked(batches: Sequence[Batch]) -> tuple[list[str], list[str]]:
    """The event ids and check-in ids of ``batches``: what to ask the store about."""
    return ([row.event_id for batch in batches for row in batch.error_logs],
            [c.check_in_id for batch in batches for c in batch.check_ins])


@dataclass
class Sifted:
    """``batches`` without what is held: ``kept`` is what to log and store (empty batches left
    out), ``results`` answers every original row from what the store says of the kept ones."""

    batches: Sequence[Batch]
    kept: list[Batch]
    # Per original batch: its index in ``kept`` (None: nothing of it kept), and per row whether
    # the row was kept; None when everything was kept as it was.
    _plan: list[tuple[int | None, list[bool]]] | None

    def results(self, stored: Sequence[list[Stored]]) -> list[list[Stored]]:
        """Per original batch, per row: the store's answer, or a duplicate for a held row."""
        if self._plan is None:
            return list(stored)
        answers: list[list[Stored]] = []
        for batch, (index, kept_rows) in zip(self.batches, self._plan, strict=True):
            of_kept = iter(stored[index] if index is not None else ())
            answers.append([
                next(of_kept) if kept else
                Stored(row.event_id, duplicate=True, bug_id=None, bug_number=None)
                for row, kept in zip(batch.error_logs, kept_rows, strict=True)])
        return answers


def sift(batches: Sequence[Batch], held: Held) -> Sifted:
    """``batches`` without the items ``held`` (or an earlier batch of them) already has."""
    if not held.event_ids and not held.check_ins and _distinct(batches):
        return Sifted(batches, list(batches), None)  # the usual commit: every item is new
    event_ids = set(held.event_ids)
    statuses = dict(held.check_ins)
    kept: list[Batch] = []
    plan: list[tuple[int | None, list[bool]]] = []
    for batch in batches:
        kept_rows = [_new_row(row, event_ids) for row in batch.error_logs]
        check_ins = [c for c in batch.check_ins if _new_check_in(c, statuses)]
        if all(kept_rows) and len(check_ins) == len(batch.check_ins):
            left = batch  # the common case: nothing held, nothing copied
        else:
            rows = [row for row, new in zip(batch.error_logs, kept_rows, strict=True) if new]
            left = Batch(error_logs=rows, check_ins=check_ins,
                         item_counts=_counts(batch, rows, check_ins),
                         status_changes=batch.status_changes, received_at=batch.received_at,
                         merges=batch.merges)
        if left.is_empty():
            plan.append((None, kept_rows))
        else:
            plan.append((len(kept), kept_rows))
            kept.append(left)
    return Sifted(batches, kept, plan)


def _distinct(batches: Sequence[Batch]) -> bool:
    """No event id, nor check-in id, comes twice."""
    event_ids, check_in_ids = asked(batches)
    return len(set(event_ids)) == len(event_ids) and len(set(check_in_ids)) == len(check_in_ids)


def _new_row(row: ErrorLog, event_ids: set[str]) -> bool:
    if row.event_id in event_ids:
        return False
    event_ids.add(row.event_id)
    return True


def _new_check_in(check_in: CheckIn, statuses: dict[str, str]) -> bool:
    before = statuses.get(check_in.check_in_id)
    if before in FINISHED or (before == "in_progress" and check_in.status == "in_progress"):
        return False
    statuses[check_in.check_in_id] = check_in.status
    return True


def _counts(batch: Batch, rows: list[ErrorLog], check_ins: list[CheckIn]) -> dict[str, int]:
    """The batch's item counts without the items taken out."""
    counts = dict(batch.item_counts)
    events_out = (sum(row.item_type != "log" for row in batch.error_logs)
                  - sum(row.item_type != "log" for row in rows))
    counts["event"] = counts.get("event", 0) - events_out
    counts["check_in"] = counts.get("check_in", 0) - (len(batch.check_ins) - len(check_ins))
    if any(row.item_type == "log" for row in batch.error_logs) and not any(
            row.item_type == "log" for row in rows):
        counts.pop("log", None)
    return {name: n for name, n in counts.items() if n > 0}
