"""A monitor's schedule and tolerances, read from a check-in's ``monitor_config``, and the next
time a run is expected. Pure.

The fields are Sentry's: ``schedule`` (``{"type": "crontab", "value": "0 3 * * *"}`` or
``{"type": "interval", "value": 10, "unit": "minute"}``), ``checkin_margin`` and
``max_runtime`` (minutes), ``timezone`` (an IANA name; crontabs are read in it),
``failure_issue_threshold`` and ``recovery_threshold`` (check-ins in a row).

Crontabs are evaluated by cronsim: it follows Debian cron across daylight-saving changes (a run
in the hour that is skipped happens right after the change; a run in the hour that repeats
happens once; ``0 * * * *`` runs every real hour), is small, pure Python and without
dependencies, and is maintained (it runs Healthchecks' cron checks); croniter's maintenance
lapsed in 2024. Intervals in minutes and hours are spans of real time; in days, weeks, months
and years they keep the local time of day in the monitor's time zone.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

UNITS = ("minute", "hour", "day", "week", "month", "year")
DEFAULT_MARGIN_MINUTES = 1
DEFAULT_MAX_RUNTIME_MINUTES = 30
LONGEST_MINUTES = 366 * 24 * 60  # margins and runtimes beyond a year are surely mistakes


class MonitorConfigError(ValueError):
    """A ``monitor_config`` we cannot use; the message names the field."""


@dataclass(frozen=True)
class Crontab:
    expression: str


@dataclass(frozen=True)
class Interval:
    value: int
    unit: str  # one of UNITS


@dataclass(frozen=True)
class MonitorConfig:
    schedule: Crontab | Interval
    checkin_margin: timedelta = timedelta(minutes=DEFAULT_MARGIN_MINUTES)
    max_runtime: timedelta = timedelta(minutes=DEFAULT_MAX_RUNTIME_MINUTES)
    timezone: str = "UTC"
    failure_issue_threshold: int = 1
    recovery_threshold: int = 1

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """``0 3 * * * (Europe/London)`` or ``every 10 minutes``: for messages and the CLI."""
        if isinstance(self.schedule, Crontab):
            zone = "" if self.timezone == "UTC" else f" ({self.timezone})"
            return f"{self.schedule.expression}{zone}"
        value, unit = self.schedule.value, self.schedule.unit
        return f"every {value} {unit}{'s' if value != 1 else ''}"


    def as_json(self) -> dict[str, object]:
        """The ``monitor_config`` this reads from (``parse_monitor_config`` gives it back)."""
        schedule: dict[str, object] = (
            {"type": "crontab", "value": self.schedule.expression}
            if isinstance(self.schedule, Crontab)
            else {"type": "interval", "value": self.schedule.value, "unit": self.schedule.unit})
        return {"schedule": schedule,
                "checkin_margin": self.checkin_margin.total_seconds() / 60,
                "max_runtime": self.max_runtime.total_seconds() / 60, "timezone": self.timezone,
                "failure_issue_threshold": self.failure_issue_threshold,
                "recovery_threshold": self.recovery_threshold}


def parse_monitor_config(raw: object) -> MonitorConfig:
    """A check-in's ``monitor_config``; raises ``MonitorConfigError`` naming the bad field."""
    if not isinstance(raw, Mapping):
        raise MonitorConfigError("monitor_config must be an object")
    timezone = raw.get("timezone") or "UTC"
    if not isinstance(timezone, str):
        raise MonitorConfigError("timezone must be an IANA time zone name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MonitorConfigError(f"timezone {timezone[:64]!r} is not a known time zone") from None
    return MonitorConfig(
        schedule=_schedule(raw.get("schedule"), timezone),
        checkin_margin=_minutes(raw, "checkin_margin", DEFAULT_MARGIN_MINUTES),
        max_runtime=_minutes(raw, "max_runtime", DEFAULT_MAX_RUNTIME_MINUTES),
        timezone=timezone,
        failure_issue_threshold=_count(raw, "failure_issue_threshold"),
        recovery_threshold=_count(raw, "recovery_threshold"),
    )


def _schedule(raw: object, timezone: str) -> Crontab | Interval:
    if not isinstance(raw, Mapping):
        raise MonitorConfigError("schedule must be an object with a type and a value")
    kind, value = raw.get("type"), raw.get("value")
    if kind == "crontab":
        if not isinstance(value, str) or not value.strip():
            raise MonitorConfigError("a crontab schedule's value must be a crontab string")
        expression = " ".join(value.split())
        try:
            CronSim(expression, datetime(2026, 1, 1, tzinfo=ZoneInfo(timezone)))
        except CronSimError as exc:
            raise MonitorConfigError(f"crontab {expression[:64]!r}: {exc}") from None
        return Crontab(expression)
    if kind == "interval":
        unit, number = raw.get("unit"), _whole(value)
        if number is None or not 0 < number <= 100_000:
            raise MonitorConfigError("an interval schedule's value must be a positive integer")
        if unit not in UNITS:
            raise MonitorConfigError(f"an interval's unit must be one of {', '.join(UNITS)}")
        return Interval(number, str(unit))
    raise MonitorConfigError("schedule type must be crontab or interval")


def _whole(value: object) -> int | None:
    """``value`` as an int when it is a whole number (``5`` or ``5.0``), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _minutes(raw: Mapping[str, object], name: str, default: int) -> timedelta:
    value = raw.get(name)
    if value is None:
        return timedelta(minutes=default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value <= LONGEST_MINUTES):
        raise MonitorConfigError(f"{name} must be a number of minutes (0 to {LONGEST_MINUTES})")
    return timedelta(minutes=value)


def _count(raw: Mapping[str, object], name: str) -> int:
    value = raw.get(name)
    if value is None:
        return 1
    number = _whole(value)
    if number is None or not 1 <= number <= 1000:
        raise MonitorConfigError(f"{name} must be a whole number from 1 to 1000")
    return number


def next_expected(config: MonitorConfig, after: datetime) -> datetime:
    """The first scheduled time strictly after ``after`` (an aware datetime), in UTC. For an
    interval, ``after`` is the run it counts from."""
    if after.tzinfo is None:
        raise ValueError("next_expected needs an aware datetime")
    schedule = config.schedule
    if isinstance(schedule, Crontab):
        local = after.astimezone(config.zone)
        following: datetime = next(iter(CronSim(schedule.expression, local)))
        return following.astimezone(UTC)
    if schedule.unit in ("minute", "hour"):
        return (after + timedelta(**{f"{schedule.unit}s": schedule.value})).astimezone(UTC)
    local = after.astimezone(config.zone).replace(tzinfo=None)  # wall-clock arithmetic
    if schedule.unit in ("day", "week"):
        local += timedelta(**{f"{schedule.unit}s": schedule.value})
    else:
        local = _add_months(local, schedule.value * (12 if schedule.unit == "year" else 1))
    return local.replace(tzinfo=config.zone).astimezone(UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later; the 31st becomes the month's last day."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month,
                          day=min(moment.day, calendar.monthrange(year, month)[1]))
