"""Throwaway Postgres databases for tests, on the server at ``SHIM_TEST_POSTGRES``.

Without that server the test is skipped, except under ``CI``, where it fails: CI must not go green
without the Postgres cases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ADMIN_URL = os.environ.get("SHIM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_admin() -> Any:
    """A connection to the server's ``test`` database, or a skip (a failure under CI)."""
    try:
        import psycopg

        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the Postgres store must be tested)")
        pytest.skip(reason)


@contextmanager
def new_database() -> Iterator[str]:
    """The URL of a new, empty database on the Postgres server, dropped afterwards."""
    admin = postgres_admin()
    name = f"shim_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
