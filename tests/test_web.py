"""The web page in-process: Starlette's TestClient over the real app and a real store, filled with
events a real ``sentry_sdk`` client made (``sdk_events``) and sent the way the SDK sends them.

Every page and every action, and each way in that must be refused: no session, a wrong token, a
missing or wrong CSRF token, a foreign Origin, too many failed logins. What an event says is shown
escaped, and what the scrubber filtered stays filtered.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sentry_sdk
from conftest import sdk_events
from starlette.testclient import TestClient

from shim.app import create_app
from shim.core.auth import Keys
from shim.settings import Settings
from shim.web.access import Sessions
from shim.web.site import local_path

KEY = "web0123456789abcdef0123456789abc"
TOKEN = "admin-token-for-the-web-tests-0123"
ORIGIN = "http://testserver"
XSS = "<script>alert(1)</script>"


def make_settings(tmp_path: Path, **extra: str) -> Settings:
    return Settings.from_env({
        "SHIM_DATA_DIR": str(tmp_path / "data"), "SHIM_PUBLIC_KEYS": KEY,
        "SHIM_BUG_LEVEL": "error", "SHIM_JOURNAL_PROCESS": "0", "SHIM_ADMIN_TOKEN": TOKEN,
        **extra})


def parse_page(page: dict[str, Any]) -> int:
    ratio = page["words"] / page["lines"]
    return int(ratio)


def recorded_events() -> list[dict[str, Any]]:
    """Events a real SDK made: a handled ZeroDivisionError with a breadcrumb, tags, a secret in
    its extra data; a fatal message whose text is markup; a warning (a log row, no bug)."""
    with sdk_events(environment="prod", release="ocr@1.2") as events, \
            sentry_sdk.isolation_scope():
        sentry_sdk.set_tag("component", "ocr")
        sentry_sdk.set_tag("workspace_id", "w-7")
        sentry_sdk.add_breadcrumb(message="opened scan.pdf", category="io", level="info")
        sentry_sdk.set_extra("api_key", "sk-live-hunter2")
        try:
            parse_page({"words": 10, "lines": 0})
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
        sentry_sdk.set_tag("component", "<b>bot</b>")
        sentry_sdk.capture_message(XSS, level="fatal")
        sentry_sdk.capture_message("disk almost full", level="warning")
    assert len(events) == 3
    return events


EVENTS = recorded_events()


def send(client: TestClient, event: dict[str, Any]) -> None:
    answer = client.post("/api/1/store/", content=orjson.dumps(event, default=str),
                         headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"})
    assert answer.status_code == 200, answer.text


def check_in(client: TestClient, slug: str, status: str,
             config: dict[str, Any] | None = None) -> None:
    from sentry_sdk.envelope import Envelope, Item, PayloadRef

    envelope = Envelope(items=[Item(payload=PayloadRef(json={
        "check_in_id": f"{abs(hash((slug, status))):032x}"[:32], "monitor_slug": slug,
        "status": status, "duration": 2.5, "environment": "prod",
        **({"monitor_config": config} if config else {})}), type="check_in")])
    answer = client.post("/api/1/envelope/", content=envelope.serialize(),
                         headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
    assert answer.status_code == 200, answer.text


def filled(client: TestClient) -> TestClient:
    for event in EVENTS:
        send(client, event)
    check_in(client, "nightly-scan", "ok",
             {"schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5})
    check_in(client, "hourly-sync", "error")
    return client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, Keys(settings.public_keys or ())),
                    follow_redirects=False) as test_client:
        yield filled(test_client)


def login(client: TestClient, token: str = TOKEN, **headers: str) -> Any:
    return client.post("/login", data={"token": token, "next": "/"},
                       headers={"Origin": ORIGIN, **headers})


def csrf_of(client: TestClient, path: str = "/") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match, "the page has no CSRF token"
    return match.group(1)


def bug_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(settings.data_dir / "shim.db")
    db.row_factory = sqlite3.Row
    try:
        return {r["bug_number"]: dict(r) for r in db.execute("SELECT * FROM bugs")}
    finally:
        db.close()


def number_of(settings: Settings, word: str) -> str:
    return next(n for n, b in bug_rows(settings).items() if word in b["title"])


# Access.

def test_the_page_is_off_without_an_admin_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, SHIM_ADMIN_TOKEN="")
    with TestClient(create_app(settings, Keys(settings.public_keys or ()))) as client:
        for path in ("/", "/login", "/dashboard", "/static/shim.css"):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json()["code"] == "not_found"


def test_the_server_log_says_how_to_turn_the_page_on(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shim.web")
    off = make_settings(tmp_path, SHIM_ADMIN_TOKEN="")
    with TestClient(create_app(off, Keys(off.public_keys or ()))):
        pass
    assert "set SHIM_ADMIN_TOKEN" in caplog.text
    caplog.clear()
    exposed = make_settings(tmp_path, SHIM_HOST="0.0.0.0")
    with TestClient(create_app(exposed, Keys(exposed.public_keys or ()))):
        pass
    assert "the web page is on" in caplog.text and "put it behind HTTPS" in caplog.text
    assert TOKEN not in caplog.text


def test_a_short_admin_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    from shim.settings import SettingsError

    with pytest.raises(SettingsError) as refused:
        make_settings(tmp_path, SHIM_ADMIN_TOKEN="short-secret")
    assert "short-secret" not in str(refused.value) and "SHIM_ADMIN_TOKEN" in str(refused.value)


@pytest.mark.parametrize("path", ["/", "/bugs/BUG-00001", "/logs?level=error", "/dashboard",
                                  "/monitors", "/settings", "/bugs/BUG-00001/markdown"])
def test_every_page_sends_a_visitor_without_a_session_to_log_in(client: TestClient,
                                                                path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2F")
    assert XSS not in answer.text


def test_a_wrong_bearer_token_is_401_and_the_right_one_reads(client: TestClient) -> None:
    wrong = client.get("/", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "web_401"
    right = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and "BUG-00001" in right.text


def test_logging_in_sets_a_signed_http_only_lax_cookie(client: TestClient) -> None:
    assert login(client, "wrong-token-0123456789").status_code == 403
    answer = login(client)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "shim_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert TOKEN not in cookie
    assert client.get("/").status_code == 200
    behind_https = login(client, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in behind_https.headers["set-cookie"]


def test_login_attempts_are_limited_per_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, SHIM_LOGIN_ATTEMPTS="3")
    with TestClient(create_app(settings, Keys(settings.public_keys or ())),
                    follow_redirects=False) as client:
        for _ in range(3):
            assert login(client, "wrong-token-0123456789").status_code == 403
        refused = login(client)  # even the right token, until the failures age out
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "shim_session" not in refused.headers.get("set-cookie", "")


def test_a_login_from_another_site_is_refused(client: TestClient) -> None:
    answer = client.post("/login", data={"token": TOKEN}, headers={"Origin": "https://evil.test"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_login_redirects_only_to_this_site() -> None:
    assert local_path("/bugs/BUG-00001?x=1") == "/bugs/BUG-00001?x=1"
    for foreign in ("//evil.test/", "/\\evil.test", "https://evil.test", "", None, "/a\r\nb"):
        assert local_path(foreign) == "/"


def test_a_session_cookie_is_checked_and_expires() -> None:
    sessions = Sessions(TOKEN, None, lifetime=3600)
    cookie, session = sessions.issue(now=1_000_000)
    assert sessions.read(cookie, now=1_000_100) == session
    assert sessions.read(cookie, now=1_000_000 + 3601) is None  # expired
    body, _, signature = cookie.rpartition(".")
    assert sessions.read(body.replace("1000000", "1999999") + "." + signature,
                         now=1_000_100) is None  # a changed issue time breaks the signature
    assert Sessions("another-token-0123456789", None, 3600).read(cookie, now=1_000_100) is None
    assert sessions.read("v1.x.y.z") is None and sessions.read(None) is None


def test_logging_out_ends_the_session_in_the_browser(client: TestClient) -> None:
    login(client)
    answer = client.post("/logout", data={"csrf": csrf_of(client)}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert 'shim_session=""' in answer.headers["set-cookie"] or "Max-Age=0" in answer.headers[
        "set-cookie"]
    assert client.get("/").status_code == 303


# Pages.

def test_the_bug_list_shows_the_bugs_with_sparklines_and_filters(client: TestClient,
                                                                  settings: Settings) -> None:
    login(client)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    division = number_of(settings, "ZeroDivisionError")
    assert f'href="/bugs/{division}"' in page.text
    assert page.text.count('<svg class="spark"') == 2
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">', page.text)
    only = client.get("/?q=division&environment=prod&release=ocr%401.2&component=ocr&workspace=w-7"
                      "&severity=high&new=1&sort=count")
    assert f"/bugs/{division}" in only.text and "&lt;script&gt;" not in only.text
    assert "No bugs match" in client.get("/?status=resolved").text
    assert client.get("/?spark=14d").status_code == 200


def test_the_bug_list_pages_with_a_keyset_cursor(client: TestClient) -> None:
    login(client)
    first = client.get("/?limit=1&sort=first")
    more = re.search(r'href="(\?[^"]*after=[^"]+)" rel="next"', first.text)
    assert more, first.text
    second = client.get("/" + more.group(1).replace("&amp;", "&"))
    numbers = [set(re.findall(r'href="/bugs/(BUG-\d+)"', p.text)) for p in (first, second)]
    assert len(numbers[0]) == len(numbers[1]) == 1 and numbers[0] != numbers[1]
    assert "First page" in second.text


@pytest.mark.parametrize("query", ["status=nope", "sort=size", "severity=huge", "limit=0",
                                   "after=zzz", "sort=count&after=abc|BUG-00001",
                                   "after=yesterday|BUG-00001", "q=a%00b", "component=%00",
                                   "q=" + "x" * 300])
def test_a_bad_filter_is_a_400_that_names_it(client: TestClient, query: str) -> None:
    login(client)
    answer = client.get(f"/?{query}")
    assert answer.status_code == 400 and 'role="alert"' in answer.text


def test_the_bug_page_shows_the_stack_trace_and_the_event(client: TestClient,
                                                          settings: Settings) -> None:
    login(client)
    number = number_of(settings, "ZeroDivisionError")
    page = client.get(f"/bugs/{number}")
    assert page.status_code == 200
    text = page.text
    assert '<ol class="frames app">' in text and "parse_page" in text
    assert "ratio = page[&#34;words&#34;] / page[&#34;lines&#34;]" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "opened scan.pdf" in text and ">io<" in text  # the breadcrumb
    assert "w-7" in text and "prod" in text and "ocr@1.2" in text
    assert "[Filtered]" in text and "hunter2" not in text  # scrubbed stays scrubbed
    assert 'aria-disabled="true"' in text  # the only event: no previous, no next
    assert '<svg class="chart"' in text
    # Why it grouped here: the variant and what contributed (the row's context._grouping).
    assert "Grouped by <strong>exception</strong> (grouping version 2)" in text
    assert "parse_page" in text.split('<pre class="grouping">', 1)[1].split("</pre>", 1)[0]
    assert f"### {number}: " in text  # the Markdown export, in its textarea
    event_id = re.search(r'href="/bugs/[^/]+/events/([0-9a-f]+)\.json"', text)
    assert event_id
    raw = client.get(f"/bugs/{number}/events/{event_id.group(1)}.json")
    assert raw.status_code == 200 and raw.json()["event_id"] == event_id.group(1)
    assert raw.json()["context"]["extra"]["api_key"] == "[Filtered]"
    markdown = client.get(f"/bugs/{number}/markdown")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "ZeroDivisionError" in markdown.text and "```python" in markdown.text


def test_moving_between_a_bugs_events(client: TestClient, settings: Settings) -> None:
    send(client, {**EVENTS[0], "event_id": "a" * 32})
    login(client)
    number = number_of(settings, "ZeroDivisionError")
    latest = client.get(f"/bugs/{number}")
    assert f"?go=prev&amp;event={'a' * 32}" in latest.text
    previous = client.get(f"/bugs/{number}?go=prev&event={'a' * 32}")
    assert previous.status_code == 200 and ">Event<" in previous.text
    assert client.get(f"/bugs/{number}?go=prev&event={'b' * 32}").status_code == 404
    assert client.get(f"/bugs/{number}?go=prev").status_code == 400
    assert client.get(f"/bugs/{number}?event=not-an-id").status_code == 400
    assert client.get("/bugs/BUG-09999").status_code == 404
    assert client.get("/bugs/nonsense").status_code == 404


def test_markup_in_an_event_is_shown_as_text_everywhere(client: TestClient,
                                                        settings: Settings) -> None:
    login(client)
    number = number_of(settings, "<script>")
    pages = [client.get(p).text for p in ("/", f"/bugs/{number}", "/logs", "/dashboard",
                                          "/?q=<script>")]
    for text in pages:
        assert XSS not in text and "<b>bot</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]
    assert "&lt;b&gt;bot&lt;/b&gt;" in pages[0]


def test_logs_dashboard_monitors_and_settings(client: TestClient) -> None:
    login(client)
    logs = client.get("/logs")
    assert "disk almost full" in logs.text and '<meta http-equiv="refresh"' not in logs.text
    warnings_up = client.get("/logs?level=error&component=ocr")
    assert "disk almost full" not in warnings_up.text and "division by zero" in warnings_up.text
    tail = client.get("/logs?tail=1&bug=1")
    assert '<meta http-equiv="refresh" content="5">' in tail.text
    assert client.get("/logs?bug=BUG-09999").status_code == 404
    assert client.get("/logs?level=loud").status_code == 400
    dashboard = client.get("/dashboard").text
    assert dashboard.count('<svg class="chart"') == 2 and "ocr" in dashboard
    assert "events per hour by level" in dashboard and ">event<" in dashboard
    monitors = client.get("/monitors").text
    assert "nightly-scan" in monitors and "hourly-sync" in monitors and "check-error" in monitors
    # Each judged now, as `shim monitors` does: the schedule, the state, the next run due.
    assert '<tr id="monitor-nightly-scan">' in monitors  # where an alert's link points
    nightly = monitors.split("nightly-scan", 1)[1].split("</tr>", 1)[0]
    assert "0 3 * * *" in nightly and "check-ok" in nightly and "<time datetime=" in nightly
    settings_page = client.get("/settings").text
    assert KEY not in settings_page and f"{KEY[:4]}…{KEY[-2:]}@testserver/1" in settings_page
    assert TOKEN not in settings_page and "sqlite" in settings_page


# Actions.

def post_form(client: TestClient, path: str, data: dict[str, Any], **headers: str) -> Any:
    return client.post(path, data=data, headers={"Origin": ORIGIN, **headers})


def test_resolving_goes_through_the_writer_and_the_backup_log(client: TestClient,
                                                              settings: Settings) -> None:
    login(client)
    number = number_of(settings, "ZeroDivisionError")
    answer = post_form(client, f"/bugs/{number}", {"csrf": csrf_of(client), "action": "resolve",
                                                    "next": f"/bugs/{number}"})
    assert answer.status_code == 303 and answer.headers["location"] == f"/bugs/{number}"
    assert bug_rows(settings)[number]["status"] == "resolved"
    logged = "".join(p.read_text() for p in (settings.backup_dir / "logs").glob("*.jsonl"))
    assert f'"bug_number":"{number}"' in logged and '"status":"resolved"' in logged
    page = client.get(f"/bugs/{number}").text
    assert "by web" in page and "Reopen" in page
    assert f"/bugs/{number}" not in client.get("/").text  # left the unresolved list
    send(client, {**EVENTS[0], "event_id": "c" * 32})  # it happens again: a regression
    assert bug_rows(settings)[number]["status"] == "open"
    assert "reopened automatically" in client.get(f"/bugs/{number}").text
    regressions = client.get("/?regressions=1").text
    assert re.findall(r'href="/bugs/(BUG-\d+)"', regressions) == [number] * 2  # number, title
    for action, status in (("resolve", "resolved"), ("reopen", "open"), ("start", "in_progress"),
                           ("close", "closed")):
        post_form(client, f"/bugs/{number}", {"csrf": csrf_of(client), "action": action})
        assert bug_rows(settings)[number]["status"] == status
    post_form(client, f"/bugs/{number}", {"csrf": csrf_of(client), "action": "assign",
                                          "assignee": "ana"})
    assert bug_rows(settings)[number]["assignee"] == "ana"


def test_bulk_changes_apply_to_every_selected_bug(client: TestClient, settings: Settings) -> None:
    login(client)
    numbers = sorted(bug_rows(settings))
    answer = post_form(client, "/bugs", {"csrf": csrf_of(client), "action": "assign",
                                         "assignee": "bo", "bug": numbers, "next": "/?status=all"})
    assert answer.status_code == 303 and answer.headers["location"] == "/?status=all"
    post_form(client, "/bugs", {"csrf": csrf_of(client), "action": "close", "bug": numbers})
    assert {(b["status"], b["assignee"]) for b in bug_rows(settings).values()} == {("closed", "bo")}
    assert post_form(client, "/bugs", {"csrf": csrf_of(client), "action": "close"}
                     ).status_code == 400
    assert post_form(client, "/bugs", {"csrf": csrf_of(client), "action": "close",
                                       "bug": ["BUG-09999"]}).status_code == 404
    assert post_form(client, "/bugs", {"csrf": csrf_of(client), "action": "explode",
                                       "bug": numbers}).status_code == 400


@pytest.mark.parametrize("how", ["no session", "no csrf", "wrong csrf", "foreign origin",
                                 "cross-site fetch", "wrong bearer"])
def test_a_change_that_cannot_prove_itself_is_refused(client: TestClient, settings: Settings,
                                                      how: str) -> None:
    number = number_of(settings, "ZeroDivisionError")
    headers = {"Origin": ORIGIN}
    data: dict[str, Any] = {"action": "resolve"}
    if how != "no session":
        login(client)
        data["csrf"] = csrf_of(client)
    if how == "no csrf":
        del data["csrf"]
    elif how == "wrong csrf":
        data["csrf"] = data["csrf"][::-1]
    elif how == "foreign origin":
        headers["Origin"] = "https://evil.test"
    elif how == "cross-site fetch":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif how == "wrong bearer":
        headers["Authorization"] = "Bearer not-the-token-at-all"
    answer = client.post(f"/bugs/{number}", data=data, headers=headers)
    assert answer.status_code in (401, 403)
    assert bug_rows(settings)[number]["status"] == "open"


def test_a_script_changes_a_bug_with_the_bearer_token(client: TestClient,
                                                      settings: Settings) -> None:
    number = number_of(settings, "ZeroDivisionError")
    answer = client.post(f"/bugs/{number}", data={"action": "close"},
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 303 and bug_rows(settings)[number]["status"] == "closed"


# The same pages on the shared stores.

@pytest.fixture(params=["postgres", "supabase"])
def shared_settings(request: pytest.FixtureRequest, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for a fresh Postgres database, reached directly or through the PostgREST
    stand-in as Supabase's HTTP API."""
    import psycopg
    from pg import new_database
    from postgrest_standin import Standin
    from test_supabase import SERVICE_KEY

    from shim.store import migrate

    with new_database() as url:
        if request.param == "postgres":
            yield make_settings(tmp_path, SHIM_DATABASE_URL=url)
            return
        with psycopg.connect(url, autocommit=True) as conn:
            migrate.migrate(conn)
        standin = Standin(url, SERVICE_KEY)
        standin.serve()
        monkeypatch.setenv("SUPABASE_URL", standin.url)
        monkeypatch.setenv("SUPABASE_KEY", SERVICE_KEY)
        try:
            yield make_settings(tmp_path, SHIM_DATABASE_URL="supabase")
        finally:
            standin.stop()


def test_every_page_and_a_change_on_postgres_and_supabase(shared_settings: Settings) -> None:
    with TestClient(create_app(shared_settings, Keys(shared_settings.public_keys or ())),
                    follow_redirects=False) as client:
        filled(client)
        login(client)
        listed = client.get("/?q=division&environment=prod&sort=count")
        number = re.findall(r'href="/bugs/(BUG-\d+)"', listed.text)[0]
        for path in ("/", f"/bugs/{number}", f"/bugs/{number}/markdown", "/logs?level=warning",
                     "/dashboard", "/monitors", "/settings", "/?spark=14d&status=all"):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
        page = client.get(f"/bugs/{number}").text
        assert "parse_page" in page and "opened scan.pdf" in page and XSS not in page
        assert "nightly-scan" in client.get("/monitors").text
        assert client.get("/dashboard").text.count('<svg class="chart"') == 2
        answer = post_form(client, f"/bugs/{number}", {"csrf": csrf_of(client),
                                                        "action": "resolve"})
        assert answer.status_code == 303
        assert f"/bugs/{number}\"" not in client.get("/").text
        assert f"/bugs/{number}\"" in client.get("/?status=resolved").text
