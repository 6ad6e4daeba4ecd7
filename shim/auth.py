"""DSN keys: where a request names its key, and whether that key may send to that project.

A request names its key in ``X-Sentry-Auth`` (or ``Authorization: Sentry ...``), in the
``sentry_key`` query parameter, or (for tunnelled browser envelopes) in the envelope header ``dsn``.
Unknown or missing key: 401. A key bound to another project: 403.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from shim.errors import Forbidden, Unauthorized

KEY_FILE = "public_key"


def key_from_auth_header(value: str | None) -> str | None:
    """``Sentry sentry_key=abc, sentry_version=7, ...`` -> ``abc``."""
    if not value:
        return None
    text = value.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    for part in text.split(","):
        name, _, raw = part.strip().partition("=")
        if name.strip().lower() == "sentry_key":
            return raw.strip().strip('"') or None
    return None


def key_from_dsn(dsn: object) -> str | None:
    if not isinstance(dsn, str) or not dsn:
        return None
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


def request_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key named by the request itself (headers or query), before reading the body."""
    return (
        key_from_auth_header(headers.get("x-sentry-auth"))
        or key_from_auth_header(headers.get("authorization"))
        or query.get("sentry_key")
        or None
    )


class Keys:
    """The accepted keys; ``None`` as a project means any project."""

    def __init__(self, keys: tuple[tuple[str, str | None], ...]) -> None:
        self._keys = keys

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._keys)

    def check(self, key: str | None, project_id: str) -> None:
        if not key:
            raise Unauthorized(
                "missing DSN key: send X-Sentry-Auth: Sentry sentry_key=<key> or ?sentry_key=<key>"
            )
        allowed: str | bool | None = False
        for known, project in self._keys:
            # Compare every key in constant time so timing does not reveal a prefix.
            if hmac.compare_digest(known.encode(), key.encode()):
                allowed = project
        if allowed is False:
            raise Unauthorized("unknown DSN key")
        if allowed is not None and allowed != project_id:
            raise Forbidden(f"this DSN key is not valid for project {project_id}")


def load_or_create_key(data_dir: Path) -> tuple[str, bool]:
    """The generated key kept in the data dir, creating it on first start. (key, created)."""
    path = data_dir / KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if key.isalnum():
            return key, False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return key, True


def dsn(key: str, base_url: str, project_id: str = "1") -> str:
    parts = urlsplit(base_url.rstrip("/"))
    return f"{parts.scheme}://{key}@{parts.netloc}{parts.path}/{project_id}"
