"""DSN keys: where a request names its key, and whether that key may send to that project.

A request names its key in ``X-Sentry-Auth`` (or ``Authorization: Sentry ...``), in the
``sentry_key`` query parameter, or (for tunnelled browser envelopes) in the envelope header ``dsn``.
Unknown or missing key: 401. A key bound to another project: 403. A key past its expiry (the
``until=`` of ``SHIM_PUBLIC_KEYS``, checked against the clock on every request): 401 saying so.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

from shim.core.errors import Forbidden, Unauthorized

PublicKey = tuple[str, str | None] | tuple[str, str | None, datetime]
"""One entry of ``SHIM_PUBLIC_KEYS``: the key, its project (``None``: any) and, when it has one, the
instant from which it is refused (UTC). Keys without an expiry stay pairs, as before expiries."""

log = logging.getLogger("shim.auth")

# A key still in use this close to its expiry is worth a warning in the server log, at most once
# an hour per key: some script has not been moved to the new DSN yet.
EXPIRY_WARNING = timedelta(days=1)
WARNING_INTERVAL = timedelta(hours=1)


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


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_text(moment: datetime) -> str:
    """``2026-12-31T00:00:00Z``: how expiries are shown, in answers, logs and the console."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DsnKey(NamedTuple):
    """One accepted key: its project (``None``: any) and the instant from which it is refused."""

    key: str
    project: str | None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class Keys:
    """The configured keys, and which of them a request may use now (``clock`` says when now is)."""

    def __init__(self, keys: Iterable[PublicKey], clock: Callable[[], datetime] = utc_now) -> None:
        self.entries = tuple(DsnKey(*key) for key in keys)
        self.now = clock
        self._warned: dict[str, datetime] = {}

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        """``(key, project)`` of the keys accepted now, in the configured order."""
        now = self.now()
        return iter([(e.key, e.project) for e in self.entries if not e.expired(now)])

    def check(self, key: str | None, project_id: str) -> None:
        if not key:
            raise Unauthorized(
                "missing DSN key: send X-Sentry-Auth: Sentry sentry_key=<key> or ?sentry_key=<key>"
            )
        now = self.now()
        match: DsnKey | None = None
        for entry in self.entries:
            # Compare every key in constant time so timing does not reveal a prefix.
            if hmac.compare_digest(entry.key.encode(), key.encode()):
                match = entry
        if match is None:
            raise Unauthorized("unknown DSN key")
        if match.expires_at is not None and match.expired(now):
            expired_at = utc_text(match.expires_at)
            raise Unauthorized(f"this DSN key expired at {expired_at}; use the new DSN",
                               expired_at=expired_at)
        if match.project is not None and match.project != project_id:
            raise Forbidden(f"this DSN key is not valid for project {project_id}")
        if match.expires_at is not None and match.expires_at - now <= EXPIRY_WARNING:
            self._warn_expiring(match.key, match.expires_at, now)

    def _warn_expiring(self, key: str, expires_at: datetime, now: datetime) -> None:
        last = self._warned.get(key)
        if last is not None and now - last < WARNING_INTERVAL:
            return
        self._warned[key] = now
        log.warning("DSN key %s... is still in use and expires at %s: move the scripts that send "
                    "with it to the new DSN", key[:8], utc_text(expires_at))
