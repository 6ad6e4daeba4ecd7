"""Forwarding to an upstream Sentry, the pure part: where each project's envelopes go
(``SHIM_FORWARD_DSN``), which items go (``SHIM_FORWARD_ITEM_TYPES``), the envelope sent, and the
upstream's rate limits as its answers state them. ``shim.forward`` does the I/O.

Facts from Sentry's developer docs ("Envelopes", "Rate Limiting"): an envelope is posted to
``<scheme>://<host>[/<path>]/api/<project>/envelope/`` with the key in ``X-Sentry-Auth``; a 429
(or any answer) may carry ``X-Sentry-Rate-Limits: <seconds>:<categories>:<scope>...`` entries,
comma-separated, whose categories (``;``-separated, empty for all) are held back for that many
seconds; without it a 429's ``Retry-After`` (seconds or an HTTP date) holds back everything.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from shim.core.envelope import Envelope

ITEM_TYPES = ("event", "check_in", "log", "transaction", "span", "attachment")
"""What ``SHIM_FORWARD_ITEM_TYPES`` may name (besides ``all``)."""

# The rate-limit category of each item type (what an upstream's limits name).
CATEGORY = {
    "event": "error", "transaction": "transaction", "span": "span", "attachment": "attachment",
    "check_in": "monitor", "log": "log_item", "session": "session", "sessions": "session",
    "client_report": "internal", "profile": "profile", "profile_chunk": "profile_chunk",
    "replay_event": "replay", "replay_recording": "replay", "feedback": "feedback",
    "statsd": "metric_bucket", "user_report": "user_report_v2",
}
# Items that only ever go with the forwarded items they describe, never alone: dropped here.
_NEVER = frozenset({"client_report"})
_DEFAULT_HOLD = 60.0  # seconds a 429 without a usable Retry-After holds everything back
_MAX_HOLD = 24 * 3600.0


@dataclass(frozen=True)
class Upstream:
    """Where one project's envelopes go: a Sentry DSN, taken apart."""

    dsn: str
    envelope_url: str
    key: str
    project_id: str
    host: str
    port: int

    @property
    def masked(self) -> str:
        """The DSN without its key, for logs, ``/healthz`` and the CLI."""
        return self.dsn.replace(self.key, self.key[:4] + "…", 1)


def parse_dsn(text: str) -> Upstream:
    """``https://KEY@HOST[:PORT][/PATH]/PROJECT``; raises ``ValueError`` naming what is wrong."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{_masked(text)!r} is not an http(s) DSN")
    if not parts.username or not parts.hostname:
        raise ValueError(f"{_masked(text)!r} has no key (https://KEY@host/PROJECT)")
    path, _, project = parts.path.rstrip("/").rpartition("/")
    if not project.isdigit():
        raise ValueError(f"{_masked(text)!r} does not end in a project id")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{_masked(text)!r} has an invalid port") from None
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 address
        netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    return Upstream(dsn=text.strip(), key=parts.username, project_id=project,
                    envelope_url=f"{parts.scheme}://{netloc}{path}/api/{project}/envelope/",
                    host=parts.hostname.lower(), port=port)


def _masked(text: str) -> str:
    return re.sub(r"//[^@/]*@", "//…@", text.strip())


@dataclass(frozen=True)
class Targets:
    """Each local project's upstream: one for every project, or one per listed project."""

    every: Upstream | None = None
    by_project: dict[str, Upstream] = field(default_factory=dict)

    def of(self, project_id: str) -> Upstream | None:
        return self.by_project.get(project_id, self.every)

    def all(self) -> list[Upstream]:
        return ([self.every] if self.every else []) + list(self.by_project.values())


def parse_targets(raw: str) -> Targets:
    """``DSN`` (every project), or ``PROJECT=DSN`` pairs, comma-separated."""
    every: Upstream | None = None
    by_project: dict[str, Upstream] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        project, equals, dsn = part.partition("=")
        if equals and project.strip().isdigit():
            if project.strip() in by_project:
                raise ValueError(f"project {project.strip()} is listed twice")
            by_project[project.strip()] = parse_dsn(dsn)
        elif every is None:
            every = parse_dsn(part)
        else:
            raise ValueError("names more than one DSN for every project; use PROJECT=DSN pairs")
    if every is None and not by_project:
        raise ValueError("names no DSN")
    return Targets(every, by_project)


def parse_item_types(raw: str) -> frozenset[str] | None:
    """The item types to forward; ``None`` for ``all``."""
    types = {t.strip().lower() for t in raw.split(",") if t.strip()}
    if "all" in types:
        return None
    unknown = sorted(types - set(ITEM_TYPES))
    if unknown:
        raise ValueError(f"unknown item type {', '.join(unknown)}: use "
                         f"{', '.join(ITEM_TYPES)} or all")
    if not types:
        raise ValueError("names no item type")
    return frozenset(types)


def forwarded(envelope: Envelope, upstream: Upstream, types: frozenset[str] | None
              ) -> tuple[bytes, frozenset[str]] | None:
    """The envelope to send upstream and the rate-limit categories of its items, or ``None``
    when none of its items is forwarded. The header's ``dsn`` names the upstream; every item
    keeps its payload exactly as it arrived."""
    items = [item for item in envelope.items
             if item.type not in _NEVER and (types is None or item.type in types)]
    if not items:
        return None
    headers = dict(envelope.headers)
    if "dsn" in headers:
        headers["dsn"] = upstream.dsn
    parts = [orjson.dumps(headers)]
    for item in items:
        parts.append(orjson.dumps({**item.headers, "length": len(item.payload)}))
        parts.append(item.payload)
    categories = frozenset(CATEGORY.get(item.type, "default") for item in items)
    return b"\n".join(parts) + b"\n", categories


def store_envelope(event_json: bytes, upstream: Upstream) -> bytes:
    """A legacy store body's event (JSON text) as an envelope of one event item."""
    header = orjson.dumps({"dsn": upstream.dsn})
    item = orjson.dumps({"type": "event", "length": len(event_json)})
    return b"\n".join((header, item, event_json)) + b"\n"


@dataclass
class RateLimits:
    """The categories an upstream holds back, until when (seconds on the caller's clock)."""

    until: dict[str, float] = field(default_factory=dict)  # category ("" = all) -> time

    def note(self, status: int, limits: str | None, retry_after: str | None, now: float) -> None:
        """Learn from one answer's status and headers."""
        if limits:
            for entry in limits.split(","):
                fields = entry.strip().split(":")
                try:
                    seconds = min(float(fields[0]), _MAX_HOLD)
                except ValueError:
                    continue
                categories = fields[1].split(";") if len(fields) > 1 and fields[1] else [""]
                for category in categories:
                    self._hold(category.strip(), now + seconds)
        elif status == 429:
            self._hold("", now + _retry_after(retry_after, now))

    def _hold(self, category: str, until: float) -> None:
        self.until[category] = max(self.until.get(category, 0.0), until)

    def wait(self, categories: Iterable[str], now: float) -> float:
        """Seconds until none of ``categories`` is held back (0: send now). An envelope goes
        whole, so it waits for the last of its categories."""
        held = [self.until.get(c, 0.0) for c in (*categories, "")]
        return max(0.0, max(held, default=0.0) - now)

    def as_json(self, now: float) -> dict[str, float]:
        """The categories held back now and for how many more seconds."""
        return {c or "all": round(t - now, 1) for c, t in sorted(self.until.items()) if t > now}


def _retry_after(value: str | None, now: float) -> float:
    """A ``Retry-After`` value (seconds, or an HTTP date) as seconds from ``now``."""
    if not value:
        return _DEFAULT_HOLD
    try:
        return min(max(float(value), 0.0), _MAX_HOLD)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return _DEFAULT_HOLD
    return min(max(moment.timestamp() - now, 0.0), _MAX_HOLD)
