"""The pages people read: the bug list, a bug, logs, the dashboard, monitors and settings. Each
reads what it shows in one call on the page's read-side store (``Reads``), then renders.

Filters live in the URL's query, so every view can be shared as a link; a bad filter value is a
400 page that names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from starlette.responses import Response

from shim.core.levels import LEVELS, SEVERITIES, STATUSES
from shim.monitors.summary import MonitorSummary, summarise
from shim.store import Store
from shim.store.browse import GOES, SORTS, UNRESOLVED, BugQuery
from shim.web import charts, present
from shim.web.site import Site, Visit, WebError

STATUS_CHOICES: dict[str, tuple[str, ...]] = {
    "unresolved": UNRESOLVED, "all": (), **{s: (s,) for s in STATUSES}}
SPARKS = {"24h": 24, "14d": 14}
CHOICES_SECONDS = 60.0  # the filters' suggestions (components, environments...) are this old at most
MAX_TEXT = 200
_NUMBER = re.compile(r"(?:bug-?)?0*(\d{1,9})", re.IGNORECASE)
_EVENT_ID = re.compile(r"[0-9a-fA-F-]{32,36}")


def bug_number(text: str) -> str:
    """``BUG-00002``, ``bug-2`` or ``2`` -> ``BUG-00002`` (as the CLI reads them)."""
    match = _NUMBER.fullmatch(text.strip())
    if not match:
        raise WebError(404, f"{text[:40]!r} is not a bug number like BUG-00002")
    return f"BUG-{int(match.group(1)):05d}"


def _choice(params: Mapping[str, str], name: str, allowed: Any, default: str | None = None
            ) -> str | None:
    value = params.get(name) or default
    if value is not None and value not in allowed:
        raise WebError(400, f"{name}={value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = (params.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        raise WebError(400, f"{name} is longer than {MAX_TEXT} characters")
    if "\x00" in value:  # no store can match it, and Postgres refuses it in text
        raise WebError(400, f"{name} contains a NUL character")
    return value or None


def _limit(params: Mapping[str, str], default: int = 50, most: int = 200) -> int:
    raw = params.get("limit") or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise WebError(400, f"limit must be a number from 1 to {most}")
    return int(raw)


def bug_query(params: Mapping[str, str], visit: Visit) -> BugQuery:
    status = _choice(params, "status", STATUS_CHOICES, "unresolved")
    sort = _choice(params, "sort", SORTS, "last") or "last"
    after = _cursor(params.get("after"), sort)
    new = params.get("new") == "1"
    return BugQuery(
        statuses=STATUS_CHOICES[status or "unresolved"],
        severity=_choice(params, "severity", SEVERITIES),
        component=_text(params, "component"), workspace=_text(params, "workspace"),
        environment=_text(params, "environment"), release=_text(params, "release"),
        text=_text(params, "q"),
        new_since=(visit.now - timedelta(hours=24)).isoformat() if new else None,
        regressions=params.get("regressions") == "1", sort=sort, after=after,
        limit=_limit(params))


def _cursor(text: str | None, sort: str) -> tuple[Any, str] | None:
    """A Next link's ``after``: the last bug's sort value (a count, or a time), ``|``, its number."""
    if not text:
        return None
    value, _, number = text.rpartition("|")
    problem = WebError(400, "after must be a cursor from a Next link")
    if not _NUMBER.fullmatch(number):
        raise problem
    if sort == "count":
        if not (value.isascii() and value.isdigit() and len(value) < 19):
            raise problem
        return int(value), number
    try:
        present.parse_time(value)
    except ValueError:
        raise problem from None
    return value, number


def _with(params: Mapping[str, str], **changes: str | None) -> str:
    """The current query with ``changes`` (None drops a parameter), as ``?...``."""
    merged = {k: v for k, v in params.items() if v}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return "?" + urlencode(merged) if merged else "?"


async def bugs(site: Site, visit: Visit) -> Response:
    params = visit.request.query_params
    query = bug_query(params, visit)
    spark = _choice(params, "spark", SPARKS, "24h") or "24h"
    if spark == "24h":
        keys, since = present.hour_keys(visit.now, 24), visit.now - timedelta(hours=24)
    else:
        keys, since = present.day_keys(visit.now, 14), visit.now - timedelta(days=14)

    def read(store: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
        found = store.search_bugs(query)
        return found, store.bug_hours([b["id"] for b in found], since.isoformat())

    found, hours = await site.reads(read)
    choices = await site.reads.kept("filter values", CHOICES_SECONDS,
                                    lambda store: store.filter_values())
    for bug in found:
        counts = hours.get(bug["id"], {})
        values = present.series(counts if spark == "24h" else present.per_day(counts), keys)
        bug["spark"] = charts.sparkline(
            values, f"{sum(values)} events in the last {'24 hours' if spark == '24h' else '14 days'}")
    more = None
    if len(found) == query.limit:
        value, number = query.cursor_of(found[-1])
        more = _with(params, after=f"{value}|{number}")
    return site.render(
        visit, "bugs.html", bugs=found, params=params, query=query, choices=choices,
        statuses=STATUS_CHOICES, severities=SEVERITIES, sorts=SORTS, spark=spark,
        more=more, first_page=_with(params, after=None) if query.after else None,
        with_=lambda **c: _with(params, **c))


async def _bug_and(site: Site, visit: Visit) -> tuple[dict[str, Any], dict[str, Any]]:
    number = bug_number(visit.request.path_params["number"])
    params = visit.request.query_params
    event_id = params.get("event")
    go = _choice(params, "go", GOES, "this" if event_id else "latest") or "latest"
    if event_id is not None and not _EVENT_ID.fullmatch(event_id):
        raise WebError(400, "event must be an event id")
    if go in ("prev", "next", "this") and event_id is None:
        raise WebError(400, f"go={go} needs the event to move from (event=...)")
    since = (visit.now - timedelta(days=14)).isoformat()

    def read(store: Store) -> dict[str, Any] | None:
        bug = store.get_bug(number)
        if bug is None:
            return None
        return {"bug": bug, "history": store.status_history(bug["id"]),
                "event": store.bug_event(bug["id"], go, event_id),
                "hours": store.bug_hours([bug["id"]], since).get(bug["id"], {})}

    found = await site.reads(read)
    if found is None:
        raise WebError(404, f"no such bug: {number}")
    return found["bug"], found


async def bug(site: Site, visit: Visit) -> Response:
    bug, found = await _bug_and(site, visit)
    event = found["event"]
    params = visit.request.query_params
    if event is None and params.get("event"):
        raise WebError(404, "no such event of this bug (or none further that way)")
    hours = found["hours"]
    day_keys = present.day_keys(visit.now, 14)
    hour_keys = present.hour_keys(visit.now, 48)
    daily = present.per_day(hours)
    chart_days = charts.bars([(k, daily.get(k, 0)) for k in day_keys], "events per day, 14 days",
                             tick_every=2)
    chart_hours = charts.bars([(f"{k[:10]} {k[11:]}:00", hours.get(k, 0)) for k in hour_keys],
                              "events per hour, 48 hours", tick_every=6)
    url = str(visit.request.url.replace(query=""))
    return site.render(
        visit, "bug.html", bug=bug, history=found["history"], event=event,
        context=(event or {}).get("context") or {}, chart_days=chart_days,
        chart_hours=chart_hours,
        blocks=present.traceback_blocks((event or {}).get("stack_trace") or bug.get("stack_trace")),
        markdown=present.markdown(bug, event, url), statuses=STATUSES)


async def bug_markdown(site: Site, visit: Visit) -> Response:
    bug, found = await _bug_and(site, visit)
    url = str(visit.request.url.replace(query="")).removesuffix("/markdown")
    return Response(present.markdown(bug, found["event"], url), media_type="text/markdown",
                    headers={"Content-Disposition": f'inline; filename="{bug["bug_number"]}.md"',
                             "X-Content-Type-Options": "nosniff"})


async def event_json(site: Site, visit: Visit) -> Response:
    number = bug_number(visit.request.path_params["number"])
    event_id = visit.request.path_params["event_id"]

    def read(store: Store) -> dict[str, Any] | None:
        bug = store.get_bug(number)
        if bug is None or not _EVENT_ID.fullmatch(event_id):
            return None
        return store.bug_event(bug["id"], "this", event_id)

    event = await site.reads(read)
    if event is None:
        raise WebError(404, f"no event {event_id[:40]!r} of {number}")
    event.pop("is_first", None)
    event.pop("is_latest", None)
    return Response(orjson.dumps(event, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                 default=str), media_type="application/json",
                    headers={"X-Content-Type-Options": "nosniff"})


async def logs(site: Site, visit: Visit) -> Response:
    params = visit.request.query_params
    level = _choice(params, "level", LEVELS)
    component = _text(params, "component")
    number = bug_number(params["bug"]) if params.get("bug") else None
    limit = _limit(params, 100, 1000)
    tail = params.get("tail") == "1"

    def read(store: Store) -> list[dict[str, Any]] | None:
        bug_id = None
        if number is not None:
            bug = store.get_bug(number)
            if bug is None:
                return None
            bug_id = bug["id"]
        return store.recent_logs(level=level, component=component, bug_id=bug_id, limit=limit)

    found = await site.reads(read)
    if found is None:
        raise WebError(404, f"no such bug: {number}")
    return site.render(visit, "logs.html", logs=found, params=params, levels=LEVELS,
                       tail=tail, with_=lambda **c: _with(params, **c))


async def dashboard(site: Site, visit: Visit) -> Response:
    now = visit.now
    day_ago, hour_ago = now - timedelta(hours=24), now - timedelta(hours=1)

    def read(store: Store) -> dict[str, Any]:
        return {"levels": store.level_hours(day_ago.isoformat()),
                "new_bugs": store.new_bugs_per_day((now - timedelta(days=14)).isoformat()),
                "stats": store.stats(hour_ago.isoformat(), day_ago.isoformat()),
                "components": store.top_components(day_ago.isoformat())}

    found = await site.reads(read)
    hour_keys = present.hour_keys(now, 24)
    per_hour = [(f"{k[:10]} {k[11:]}:00", {level: found["levels"].get(level, {}).get(k, 0)
                                           for level in LEVELS}) for k in hour_keys]
    day_keys = present.day_keys(now, 14)
    health = await _health(visit)
    return site.render(
        visit, "dashboard.html", stats=found["stats"], components=found["components"],
        levels=LEVELS, colours=charts.LEVEL_COLOURS, health=health,
        chart_levels=charts.stacked_bars(per_hour, tuple(reversed(LEVELS)),
                                         "events per hour by level, 24 hours", width=1000,
                                         height=190, tick_every=3),
        chart_new=charts.bars([(k, found["new_bugs"].get(k, 0)) for k in day_keys],
                              "new bugs per day, 14 days", tick_every=2),
        total_levels={level: sum(found["levels"].get(level, {}).values()) for level in LEVELS})


async def _health(visit: Visit) -> dict[str, Any]:
    writer = visit.server.writer
    behind, lag_bytes = await writer.run_in_thread(writer.journal.lag)
    state = "down" if writer.store_error else "catching up" if behind else "ok"
    return {"store": state, "store_error": writer.store_error, "lag_bytes": lag_bytes,
            "log_error": writer.log_error, "transactions": writer.transactions,
            "summary": visit.server.store_summary}


async def monitors(site: Site, visit: Visit) -> Response:
    found = await site.reads(lambda store: store.recent_check_ins(1000))
    by_slug: dict[str, dict[str, Any]] = {}
    for check_in in found:  # newest first
        monitor = by_slug.setdefault(check_in["monitor_slug"], {
            "slug": check_in["monitor_slug"], "latest": check_in, "counts": {}, "total": 0})
        monitor["counts"][check_in["status"]] = monitor["counts"].get(check_in["status"], 0) + 1
        monitor["total"] += 1
    # Each monitor judged now, as `shim monitors` does (the first environment of a slug shown).
    states: dict[str, MonitorSummary] = {}
    for summary in summarise(found, datetime.now(UTC)):
        states.setdefault(summary.slug, summary)
    return site.render(visit, "monitors.html", monitors=sorted(by_slug.values(),
                                                                 key=lambda m: m["slug"]),
                       sample=len(found), states=states)


async def settings_page(site: Site, visit: Visit) -> Response:
    settings = site.settings
    base = urlsplit(settings.public_url or str(visit.request.base_url))
    keys = [{"dsn": f"{base.scheme}://{present.mask(e.key)}@{base.netloc}/{e.project or '1'}",
             "project": e.project or "any",
             "expires_at": e.expires_at.isoformat() if e.expires_at else None,
             "expired": e.expired(visit.now)} for e in site.keys.entries]
    return site.render(visit, "settings.html", keys=keys, health=await _health(visit),
                       settings=settings, backup_dir=str(settings.backup_dir))
