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

    def ping(self) -> bool:
        """Whether the store takes writes right now."""
        ...

    def summary(self) -> dict[str, Any]:
        """What ``/healthz`` says about the store."""
        ...

    def close(self) -> None: ...

    # Reads, for the CLI and the snapshot.
    def list_bugs(self, status: str | None = None, component: str | None = None,
                  workspace: str | None = None, since: str | None = None, sort: str = "last",
                  limit: int = 50) -> list[dict[str, Any]]: ...

    def get_bug(self, bug_number: str) -> dict[str, Any] | None: ...

    def status_history(self, bug_id: str) -> list[dict[str, Any]]: ...

    def list_logs(self, level: str | None = None, component: str | None = None,
                  bug_id: str | None = None, after: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]: ...

    def all_bugs(self) -> list[dict[str, Any]]: ...

    def stats(self, hour_ago: str, day_ago: str) -> dict[str, Any]: ...


class UnsupportedStore(ValueError):
    pass


def open_store(url: str, related_logs: int = 20, server: bool = False) -> Store:
    """The store for ``url``; ``server=True`` also starts the store's background upkeep."""
    if url.startswith("sqlite://"):
        from shim.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), related_logs=related_logs,
                           background_checkpoints=server)
    if url.startswith(("postgresql://", "postgres://")):
        from shim.store.postgres import PostgresStore

        return PostgresStore(url, related_logs=related_logs)
    raise UnsupportedStore(f"no store for {url.split(':', 1)[0]!r} URLs;"
                           " use sqlite:///PATH or postgresql://…")


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    if not url.startswith("sqlite:///"):
        raise UnsupportedStore(f"{url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
    return url.removeprefix("sqlite:///") or ":memory:"
