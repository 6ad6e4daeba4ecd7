"""``shim merge`` and ``shim unmerge``: an operator's correction of grouping.

Each is a ``BugMerge`` written to the backup log and applied to the store in log order, like a
status change (``shim.cli.bugs.change_bugs``), so ``shim restore`` replays it; its change id makes
a replay harmless.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from shim.cli.bugs import CommandError, _now, _open, _print_json, bug_number, log_and_apply
from shim.core.records import Batch, BugMerge
from shim.settings import Settings
from shim.store import Store, iter_bugs


def cmd_merge(settings: Settings, args: argparse.Namespace) -> int:
    into, *others = [bug_number(n) for n in args.numbers]
    if not others or into in others:
        raise CommandError("name the bug to keep, then at least one other bug to fold into it")

    def check(store: Store) -> None:
        for number in (into, *others):
            bug = store.get_bug(number)
            if bug is None:
                raise CommandError(f"no bug {number}")
            if bug.get("merged_into"):
                raise CommandError(f"{number} is merged into {bug['merged_into']} already")

    bugs = _apply(settings, BugMerge(change_id=uuid.uuid4().hex, kind="merge", bug_number=into,
                                     others=tuple(others), at=_at(), by=args.by), check)
    return _report(bugs, args)


def cmd_unmerge(settings: Settings, args: argparse.Namespace) -> int:
    number = bug_number(args.number)
    hashes = tuple(dict.fromkeys(h.strip().lower() for h in args.hashes))

    def check(store: Store) -> None:
        bug = store.get_bug(number)
        if bug is None:
            raise CommandError(f"no bug {number}")
        own = {h["hash"] for h in store.bug_hashes(bug["id"])}
        for found in hashes:
            if found == bug["fingerprint"]:
                raise CommandError(f"{found} is {number}'s own fingerprint: it stays")
            if found not in own:
                raise CommandError(f"{number} has no hash {found} (see shim bug {number} "
                                   "--grouping)")

    merge = BugMerge(change_id=uuid.uuid4().hex, kind="unmerge", bug_number=number,
                     hashes=hashes, at=_at(), by=args.by)
    bugs = _apply(settings, merge, check)
    return _report(bugs, args)


def _at() -> str:
    return _now().isoformat(timespec="microseconds")


def _apply(settings: Settings, merge: BugMerge, check: Any) -> list[dict[str, Any]]:
    """Log and apply ``merge`` once ``check(store)`` passes; the bugs it touched, as they are."""
    store = _open(settings)
    try:
        check(store)
        log_and_apply(settings, store, Batch(merges=[merge], received_at=merge.at))
        touched = [merge.bug_number, *merge.others]
        if merge.kind == "unmerge":  # the bugs whose own fingerprints the hashes are
            touched += [b["bug_number"] for b in iter_bugs(store)
                        if b["fingerprint"] in merge.hashes]
        return [bug for n in dict.fromkeys(touched) if (bug := store.get_bug(n)) is not None]
    finally:
        store.close()


def _report(bugs: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if args.json:
        _print_json(bugs)
        return 0
    for bug in bugs:
        where = f"merged into {bug['merged_into']}" if bug.get("merged_into") else (
            f"{bug['occurrence_count']} occurrences")
        print(f"{bug['bug_number']}: {where}  {bug['title']}")
    return 0
