"""Storage: one protocol, one backend per URL scheme. ``open_store(url)`` picks the backend.

Stores are synchronous and are driven from the writer's single thread; routes never touch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shim.records import Batch, Stored


class Store(Protocol):
    def write(self, batches: Sequence[Batch]) -> list[list[Stored]]:
        """Store every batch in one transaction; per batch, what happened to each error_log."""
        ...

    def summary(self) -> dict[str, Any]:
        """Row counts for ``/healthz``."""
        ...

    def close(self) -> None: ...


class UnsupportedStore(ValueError):
    pass


def open_store(url: str, related_logs: int = 20) -> Store:
    if url.startswith("sqlite://"):
        from shim.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), related_logs=related_logs)
    raise UnsupportedStore(f"no store for {url.split(':', 1)[0]!r} URLs; use sqlite:///PATH")


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    if not url.startswith("sqlite:///"):
        raise UnsupportedStore(f"{url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    return url.removeprefix("sqlite:///") or ":memory:"
