"""Configuration: one table of ``SHIM_*`` variables, read once into a frozen ``Settings``.

Each entry has a type, a default and one line of help; the README's settings table is checked
against ``SETTINGS`` by a test. A bad value raises ``SettingsError`` naming the variable, and
``shim serve`` turns that into a clear message and a non-zero exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shim.alerts.channels import Channel, ChannelError, parse_channels
from shim.core.auth import PublicKey
from shim.core.levels import LEVELS
from shim.core.upstream import Targets, Upstream, parse_item_types, parse_targets


class SettingsError(ValueError):
    """A ``SHIM_*`` variable has a value we cannot use."""


@dataclass(frozen=True)
class Setting:
    env: str
    field: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    secret: bool = False  # its value is never repeated in an error (nor in a repr)


def _positive_int(raw: str) -> int:
    value = int(raw.replace("_", ""))
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _count(raw: str) -> int:
    value = int(raw.replace("_", ""))
    if value < 0:
        raise ValueError("must be 0 or a positive integer")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def _level(raw: str) -> str:
    value = raw.strip().lower()
    if value == "fatal":
        value = "critical"
    if value not in LEVELS:
        raise ValueError(f"must be one of {', '.join(LEVELS)}")
    return value


def _keys(raw: str) -> tuple[PublicKey, ...]:
    """``key[:project_id][:until=TIME]``, comma-separated."""
    keys = tuple(_key(part.strip()) for part in raw.split(",") if part.strip())
    if not keys:
        raise ValueError("lists no keys")
    return keys


def _key(part: str) -> PublicKey:
    """``key``, ``key:7``, ``key:7:until=...``, ``key::until=...`` or ``key:until=...``.

    Project ids are digits and options contain ``=``, so the field after the key is the project
    exactly when it has no ``=``; the option's value is the rest, colons and all (ISO 8601 times
    contain colons).
    """
    key, _, rest = part.partition(":")
    key = key.strip()
    if not key.isalnum():
        raise ValueError(f"key {key!r} must be letters and digits only")
    project = ""
    if "=" not in rest.partition(":")[0]:
        project, _, rest = rest.partition(":")
    project, option = project.strip(), rest.strip()
    if project and not project.isdigit():
        raise ValueError(f"project id {project!r} for key {key} must be a number")
    if not option:
        return (key, project or None)
    name, _, value = option.partition("=")
    if name.strip() != "until":
        raise ValueError(f"unknown option {option!r} for key {key}: the only option is "
                         "until=<UTC date or time>")
    return (key, project or None, _expiry(value.strip(), key))


def _expiry(value: str, key: str) -> datetime:
    """An ISO 8601 time, UTC unless it names an offset; a bare date means through the end of that
    day (UTC), so ``until=2026-12-31`` is refused from 2027-01-01T00:00:00Z."""
    try:
        try:
            return datetime.combine(date.fromisoformat(value) + timedelta(days=1), time.min,
                                    tzinfo=UTC)
        except ValueError:
            moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"until={value!r} for key {key} is not an ISO 8601 date or time, such as "
                         "2026-12-31 or 2026-12-31T00:00:00Z") from None


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _words(raw: str) -> tuple[str, ...]:
    words = tuple(w.strip() for w in raw.split(",") if w.strip())
    bad = [w for w in words if not w.replace("_", "").replace("-", "").isalnum()]
    if bad:
        raise ValueError(f"key names are letters, digits, - and _ only: {', '.join(bad)}")
    return words


def _text(raw: str) -> str:
    return raw.strip()


def _rate(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return value


def _megabytes(raw: str) -> int:
    return _positive_int(raw) * 1024 * 1024


def _hours(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number of hours")
    return value * 3600


def _channels(raw: str) -> tuple[Channel, ...]:
    try:
        return parse_channels(raw)
    except ChannelError as exc:  # (names the channel by its masked form)
        raise ValueError(str(exc)) from None


def _secret_text(raw: str) -> str:
    value = raw.strip()
    if len(value) < 16:
        raise ValueError("must be at least 16 characters (e.g. the output of "
                         "`python3 -c 'import secrets; print(secrets.token_hex(32))'`)")
    return value


def _switch(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0 (or true/false, yes/no, on/off)")


SETTINGS: tuple[Setting, ...] = (
    Setting("SHIM_DATA_DIR", "data_dir", _text, "./data",
            "Directory for the SQLite database, the generated key and the backups."),
    Setting("SHIM_DATABASE_URL", "database_url", _text, None,
            "Store URL; default `sqlite:///<SHIM_DATA_DIR>/shim.db`."),
    Setting("SHIM_PUBLIC_KEYS", "public_keys", _keys, None,
            "Accepted DSN keys, comma-separated: `key` or `key:project_id`, either optionally "
            "followed by `:until=<UTC ISO 8601 time>` from which it is refused (a bare date: "
            "through that day); unset: one is generated and kept in the data dir."),
    Setting("SHIM_HOST", "host", _text, "127.0.0.1",
            "Address `shim serve` binds to (also `--host`)."),
    Setting("SHIM_PORT", "port", _port, "8000", "Port `shim serve` listens on (also `--port`)."),
    Setting("SHIM_WORKERS", "workers", _positive_int, "1",
            "Server processes sharing the port (also `--workers`); the rate limits and the storm "
            "threshold are split evenly between them."),
    Setting("SHIM_PUBLIC_URL", "public_url", _text, None,
            "Base URL scripts reach the server at, used in the printed DSN and for the links to "
            "a bug's web page in alerts; default `http://<host>:<port>` (alerts: no links)."),
    Setting("SHIM_BUG_LEVEL", "bug_level", _level, "critical",
            "Lowest event level that opens or updates a bug (unhandled exceptions always do)."),
    Setting("SHIM_GROUPING_TRANSITION_DAYS", "grouping_transition_days", _count, "30",
            "Days after the upgrade to grouping version 2 during which events also compute "
            "version 1's hash, so a repeat of a bug opened before joins it (and teaches it the "
            "new hash) instead of opening another; 0: never."),
    Setting("SHIM_MAX_BODY_BYTES", "max_body_bytes", _positive_int, str(20 * 1024 * 1024),
            "Largest request body accepted as sent (compressed)."),
    Setting("SHIM_MAX_DECODED_BYTES", "max_decoded_bytes", _positive_int, str(100 * 1024 * 1024),
            "Largest request body accepted after decompression."),
    Setting("SHIM_MAX_EVENT_BYTES", "max_event_bytes", _positive_int, str(1024 * 1024),
            "Largest event, log or check-in item kept as sent; a larger event is trimmed to fit "
            "and stored (what was cut is listed in its `context._trimmed`), a larger log or "
            "check-in item is skipped and reported (413)."),
    Setting("SHIM_READ_TIMEOUT", "read_timeout", _positive_float, "30",
            "Seconds a request body may take to arrive; slower senders get 408."),
    Setting("SHIM_RELATED_LOGS", "related_logs", _positive_int, "20",
            "How many of the most recent error_logs ids a bug keeps in `related_log_ids`."),
    Setting("SHIM_EXPORT_INTERVAL", "export_interval", _positive_float, "5",
            "Seconds between rewrites of `bugs/bugs.csv` and `bugs/bugs.json` (only when a bug "
            "changed)."),
    Setting("SHIM_RATE_LIMIT_PER_KEY", "rate_limit_per_key", _count, "6000",
            "Events (and log records) per minute one DSN key may send before 429; 0: no limit."),
    Setting("SHIM_RATE_LIMIT", "rate_limit", _count, "0",
            "Events (and log records) per minute for the whole server before 429; 0: no limit."),
    Setting("SHIM_STORM_THRESHOLD", "storm_threshold", _count, "1000",
            "Events of one fingerprint per hour stored in full; later repeats are stored slim "
            "(no stack trace or context) but still counted; 0: always in full."),
    Setting("SHIM_SCRUB_KEYS", "scrub_keys", _words, None,
            "Extra key names whose values are replaced by `[Filtered]` (besides password, "
            "secret, token, api_key, authorization, cookie, session...), comma-separated."),
    Setting("SHIM_CORS_ORIGINS", "cors_origins", _origins, "*",
            "Origins allowed to send from a browser, comma-separated; `*` for any."),
    Setting("SHIM_LOG_LEVEL", "log_level", _level, "info", "Level of the server's own log."),
    Setting("SHIM_JOURNAL_PROCESS", "journal_process", _switch, "1",
            "With SQLite, each server process appends to the backup log and commits in a child "
            "process of its own, beside request handling rather than in turn with it; 0: in the "
            "server process."),
    Setting("SHIM_RETENTION_DAYS", "retention_days", _count, "90",
            "Days error_logs rows and check-ins are kept (each bug's first, latest and reopening "
            "events, and each monitor's latest check-in, are kept whatever their age; bugs are "
            "never deleted); pruned hourly; 0: keep everything."),
    Setting("SHIM_BACKUP_RETENTION_DAYS", "backup_retention_days", _count, "0",
            "Days backup day files are kept once the store has applied them; `shim restore` can "
            "then rebuild only what the kept days hold; 0: keep them all."),
    Setting("SHIM_METRICS_TOKEN", "metrics_token", _secret_text, None,
            "Bearer token that `GET /metrics` (Prometheus's text format) requires (the "
            "`SHIM_ADMIN_TOKEN` is accepted too); neither set: no /metrics (404).", secret=True),
    Setting("SHIM_FORWARD_DSN", "forward_dsn", parse_targets, None,
            "Also send what is stored to this upstream Sentry DSN (while moving to it), or "
            "`project_id=DSN` pairs, comma-separated, for several projects; unset: no forwarding.",
            secret=True),
    Setting("SHIM_FORWARD_ITEM_TYPES", "forward_item_types", parse_item_types, "event,check_in",
            "Item types forwarded, comma-separated: event, check_in, log, transaction, span, "
            "attachment, or all."),
    Setting("SHIM_FORWARD_SAMPLE_RATE", "forward_sample_rate", _rate, "1",
            "Share of envelopes forwarded, from 0 to 1."),
    Setting("SHIM_FORWARD_MAX_MB", "forward_max_bytes", _megabytes, "200",
            "Size of the forward queue on disk (`<SHIM_DATA_DIR>/forward`) in MiB; past it the "
            "oldest envelopes are dropped and counted."),
    Setting("SHIM_FORWARD_MAX_AGE_HOURS", "forward_max_age", _hours, "72",
            "Hours an envelope may wait for the upstream before it is dropped and counted."),
    Setting("SHIM_NOTIFY", "notify", _channels, None,
            "Alert channels, comma-separated URLs: `slack+https://...`, `discord+https://...`, "
            "`teams+https://...`, `telegram+https://...`, `smtp://user:pass@host:587/?from=a@x&"
            "to=b@y`, `smtps://...`, `webhook+https://...` or a plain https URL (see Alerts).",
            secret=True),
    Setting("SHIM_WEBHOOK_SECRET", "webhook_secret", _secret_text, None,
            "Key of the HMAC-SHA256 of each webhook alert's body, sent in `X-Shim-Signature: "
            "sha256=<hex>` (at least 16 characters); unset: webhooks are not signed.",
            secret=True),
    Setting("SHIM_ADMIN_TOKEN", "admin_token", _secret_text, None,
            "Turns the web page on at `/`: the password of its login form, also accepted as "
            "`Authorization: Bearer <token>`; at least 16 characters; unset: the page is off.", secret=True),
    Setting("SHIM_SESSION_KEY", "session_key", _secret_text, None,
            "Key that signs the web page's session cookies; default: derived from "
            "`SHIM_ADMIN_TOKEN` (so changing the token logs everyone out).", secret=True),
    Setting("SHIM_SESSION_HOURS", "session_hours", _positive_float, "12",
            "Hours a web page login lasts."),
    Setting("SHIM_LOGIN_ATTEMPTS", "login_attempts", _positive_int, "10",
            "Failed web page logins allowed per client address in 15 minutes; then 429."),
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    public_keys: tuple[PublicKey, ...] | None
    host: str
    port: int
    workers: int
    public_url: str | None
    bug_level: str
    grouping_transition_days: int
    max_body_bytes: int
    max_decoded_bytes: int
    max_event_bytes: int
    read_timeout: float
    related_logs: int
    export_interval: float
    scrub_keys: tuple[str, ...] | None
    rate_limit_per_key: int
    rate_limit: int
    storm_threshold: int
    cors_origins: tuple[str, ...]
    log_level: str
    journal_process: bool
    retention_days: int
    backup_retention_days: int
    metrics_token: str | None = field(repr=False)
    forward_dsn: Targets | None = field(repr=False)
    forward_item_types: frozenset[str] | None
    forward_sample_rate: float
    forward_max_bytes: int
    forward_max_age: float
    notify: tuple[Channel, ...]
    webhook_secret: str | None = field(repr=False)
    admin_token: str | None = field(repr=False)
    session_key: str | None = field(repr=False)
    session_hours: float
    login_attempts: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``); raise ``SettingsError``."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = source.get(setting.env)
            if raw is None or raw.strip() == "":
                raw = setting.default
            if raw is None:
                values[setting.field] = None
                continue
            try:
                values[setting.field] = setting.parse(raw)
            except ValueError as exc:
                shown = setting.env if setting.secret else f"{setting.env}={raw!r}"
                raise SettingsError(f"{shown}: {exc}") from None
        values["data_dir"] = Path(values["data_dir"])
        if values["database_url"] is None:
            values["database_url"] = f"sqlite:///{values['data_dir'] / 'shim.db'}"
        values["notify"] = values["notify"] or ()
        assert {f.name for f in fields(cls)} == set(values)
        return cls(**values)

    @property
    def backup_dir(self) -> Path:
        """Where the backup log (``logs/``) and the bugs snapshot live."""
        return self.data_dir / "bugs"

    @property
    def metrics_tokens(self) -> tuple[str, ...]:
        """The bearer tokens ``GET /metrics`` accepts; none: no metrics at all."""
        return tuple(t for t in (self.metrics_token, self.admin_token) if t)

    def forwards_to_itself(self) -> Upstream | None:
        """The forward DSN that names this server (same port, a loopback or its own host), which
        would send every event round in a loop."""
        if self.forward_dsn is None:
            return None
        local = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", self.host.lower()}
        if self.public_url:
            local.add((urlsplit(self.public_url).hostname or "").lower())
        return next((u for u in self.forward_dsn.all()
                     if u.port == self.port and u.host in local), None)

    def replace(self, **changes: Any) -> Settings:
        return type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})
