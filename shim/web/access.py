"""Who may use the web page, and how a request proves it: the admin token, signed session cookies
with their CSRF tokens, the Origin check on state changes, and the login attempts' limit.

Sessions are stateless: the cookie holds when it was issued and a random session id, signed with
HMAC-SHA256 under a key derived from ``SHIM_ADMIN_TOKEN`` (or ``SHIM_SESSION_KEY``), so every
worker process accepts every other's sessions and changing the token ends them all. The CSRF token
of a session is an HMAC of its id: nothing to store, nothing a cross-site page can read. Every
comparison of a secret is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "shim_session"
LOGIN_WINDOW = 15 * 60.0  # seconds the failed-login count looks back over


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def same_secret(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in time that does not depend on where they differ (the
    digests have one length, so not on the lengths either)."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


@dataclass(frozen=True)
class Session:
    session_id: str
    issued: int
    csrf: str


class Sessions:
    """Issues and checks session cookies; ``lifetime`` in seconds."""

    def __init__(self, token: str, session_key: str | None, lifetime: float) -> None:
        self.token = token
        # A key of its own even when derived: a cookie's signature never helps guess the token.
        material = session_key or token
        self.key = hmac.new(material.encode(), b"shim web session key", hashlib.sha256).digest()
        self.lifetime = lifetime

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self.key, text.encode(), hashlib.sha256).digest())

    def _csrf(self, session_id: str) -> str:
        return self._sign(f"csrf.{session_id}")

    def issue(self, now: float | None = None) -> tuple[str, Session]:
        """A new session: the cookie's value and the session."""
        issued = int(time.time() if now is None else now)
        session_id = _b64(secrets.token_bytes(18))
        body = f"v1.{issued}.{session_id}"
        return f"{body}.{self._sign(body)}", Session(session_id, issued, self._csrf(session_id))

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie that this server signed and that has not expired."""
        if not cookie or len(cookie) > 200:
            return None
        body, _, signature = cookie.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        issued = int(parts[1])
        moment = time.time() if now is None else now
        if not issued <= moment + 60 or moment - issued > self.lifetime:
            return None
        return Session(parts[2], issued, self._csrf(parts[2]))

    def csrf_matches(self, given: str, session: Session) -> bool:
        return hmac.compare_digest(given.encode(), session.csrf.encode())

    def token_matches(self, given: str) -> bool:
        return same_secret(given, self.token)

    def bearer(self, authorization: str | None) -> bool | None:
        """None without a Bearer header; else whether it carries the token."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        return self.token_matches(authorization[7:].strip())


def origin_allowed(origin: str | None, host: str | None, scheme: str,
                   public_url: str | None) -> bool:
    """Whether a state-changing request's ``Origin`` is this server's own: the address it was
    reached at (its Host header), or ``SHIM_PUBLIC_URL``'s. No Origin (older browsers, scripts)
    is allowed: the CSRF token (or the Bearer token) still has to be right."""
    if origin is None:
        return True
    own = {f"{scheme}://{host}".lower()} if host else set()
    if public_url:
        parts = urlsplit(public_url)
        own.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origin.lower() in own


class LoginLimiter:
    """Failed logins per client address over the last ``LOGIN_WINDOW`` seconds; past ``allowed``,
    logins from that address are refused until the oldest failure ages out."""

    def __init__(self, allowed: int, window: float = LOGIN_WINDOW) -> None:
        self.allowed = allowed
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Seconds until ``address`` may try again (0: now)."""
        moment = time.monotonic() if now is None else now
        failures = self._recent(address, moment)
        if len(failures) < self.allowed:
            return 0
        return max(1, int(failures[0] + self.window - moment) + 1)

    def failed(self, address: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        self._failures.setdefault(address, deque()).append(moment)
        if len(self._failures) > 10_000:  # bounded: forget the quietest addresses first
            for stale in sorted(self._failures, key=lambda a: self._failures[a][-1])[:1000]:
                del self._failures[stale]
