"""Grouping quality: pairwise F1 of version 1 and version 2 against the grouping corpus.

    python -m bench.grouping_f1              # overall and per platform, v1 beside v2
    python -m bench.grouping_f1 --explain    # also every pair v2 decides wrong, by group
    python -m bench.grouping_f1 --json

The corpus (``tests/fixtures/grouping/*.jsonl``) holds events, each labelled with the group it
belongs to (the reasons are in ``manifest.json``). Every pair of events is either together or apart
in the labels and in a grouping's hashes: precision is the share of the pairs a grouping puts
together that belong together, recall the share of the pairs that belong together it puts
together, F1 their harmonic mean. Per platform, only pairs of two events of that platform count.

Version 1 is computed the way ingestion does (``shim.core.event.normalize_event``, every level
grouped), version 2 by ``shim.core.grouping_v2.group`` on the event as sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shim.core.event import normalize_event
from shim.core.grouping_v2 import group

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "grouping"
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Record:
    group: str
    platform: str
    source: str
    event: dict[str, Any]


def read_corpus(directory: Path = CORPUS) -> list[Record]:
    records = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                records.append(Record(raw["group"], raw["platform"], raw["source"], raw["event"]))
    return records


def v1_hash(event: dict[str, Any]) -> str:
    """Version 1's hash, as a row computes it during the transition to version 2."""
    fingerprint = normalize_event(event, event_id=None, project_id="1", received=RECEIVED,
                                  bug_level="debug", with_v1=True).fingerprint_v1
    assert fingerprint is not None
    return fingerprint


def v2_hash(event: dict[str, Any]) -> str:
    return group(event).hash


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    events: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def _pairs(counts: Iterable[int]) -> int:
    return sum(n * (n - 1) // 2 for n in counts)


def score(labels: list[str], hashes: list[str]) -> Score:
    """Pairwise precision and recall of ``hashes`` against ``labels`` (1.0 when there is no pair
    to get right or wrong)."""
    together = _pairs(Counter(zip(labels, hashes, strict=True)).values())
    predicted = _pairs(Counter(hashes).values())
    expected = _pairs(Counter(labels).values())
    return Score(together / predicted if predicted else 1.0,
                 together / expected if expected else 1.0, len(labels))


def scores(records: list[Record], hasher: Callable[[dict[str, Any]], str]) -> dict[str, Score]:
    """``{"overall": ..., platform: ...}``."""
    hashes = [hasher(r.event) for r in records]
    result = {"overall": score([r.group for r in records], hashes)}
    for platform in sorted({r.platform for r in records}):
        chosen = [i for i, r in enumerate(records) if r.platform == platform]
        result[platform] = score([records[i].group for i in chosen], [hashes[i] for i in chosen])
    return result


def mistakes(records: list[Record],
             hasher: Callable[[dict[str, Any]], str]) -> tuple[list[set[str]], list[str]]:
    """Wrong merges (label sets sharing one hash) and splits (labels spread over several)."""
    by_hash: dict[str, set[str]] = {}
    by_label: dict[str, set[str]] = {}
    for record in records:
        digest = hasher(record.event)
        by_hash.setdefault(digest, set()).add(record.group)
        by_label.setdefault(record.group, set()).add(digest)
    merges = [labels for labels in by_hash.values() if len(labels) > 1]
    splits = [label for label, digests in by_label.items() if len(digests) > 1]
    return merges, splits


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--explain", action="store_true", help="list v2's wrong merges/splits")
    options.add_argument("--json", action="store_true")
    args = options.parse_args(argv)
    records = read_corpus()
    results = {"v1": scores(records, v1_hash), "v2": scores(records, v2_hash)}
    if args.json:
        print(json.dumps({version: {name: {"precision": s.precision, "recall": s.recall,
                                           "f1": s.f1, "events": s.events}
                                    for name, s in table.items()}
                          for version, table in results.items()}, indent=2))
    else:
        print(f"{'platform':<12} {'events':>6}   {'v1 F1':>6} {'P':>5} {'R':>5}"
              f"   {'v2 F1':>6} {'P':>5} {'R':>5}")
        for name, first in results["v1"].items():
            second = results["v2"][name]
            print(f"{name:<12} {first.events:>6}   {first.f1:6.3f} {first.precision:5.2f} "
                  f"{first.recall:5.2f}   {second.f1:6.3f} {second.precision:5.2f} "
                  f"{second.recall:5.2f}")
    if args.explain:
        merges, splits = mistakes(records, v2_hash)
        for labels in merges:
            print("v2 merges:", ", ".join(sorted(labels)))
        for label in splits:
            print("v2 splits:", label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
