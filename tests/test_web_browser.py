"""The web page in a real browser: Playwright driving the machine's Chromium (Debian's package,
launched by path; no browser download) against a real ``shim serve --workers 2`` on a free port,
filled by real ``sentry_sdk`` clients run as scripts.

Logs in with the keyboard, filters the bug list, opens a bug, sees its stack trace, resolves it,
sees it leave the open list, logs out; on the way it saves a screenshot of every page, at a laptop
and a phone width, under the test's tmp dir (or ``SHIM_SCREENSHOTS``, for the README's pictures).

Without Chromium the tests are skipped, except under ``CI``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LiveServer, expect_ok, run_scripts, script, start_server

CHROMIUM = os.environ.get("SHIM_TEST_CHROMIUM", "/usr/bin/chromium")
TOKEN = "browser-test-admin-token-0123456789"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

# The scanners' own code, as modules on disk, so their frames have source lines to show.
OCR_MODULE = """
def page_ratio(words, lines):
    return words / lines


def analyse(pages):
    return [page_ratio(p["words"], p["lines"]) for p in pages]
"""
BOT_MODULE = """
def handle(update):
    return update["message"]["chat"]["id"]
"""

SCANNERS = [
    script("""
        import sys, pathlib, tempfile
        folder = tempfile.mkdtemp()
        pathlib.Path(folder, "ocr_pages.py").write_text(OCR_MODULE)
        sys.path.insert(0, folder)
        import sentry_sdk
        sentry_sdk.init(release="ocr@2.4.1", environment="production")
        sentry_sdk.set_tag("component", "ocr-analyser")
        sentry_sdk.add_breadcrumb(category="io", message="opened invoice-0042.pdf")
        import ocr_pages
        ocr_pages.analyse([{"words": 120, "lines": 12}, {"words": 80, "lines": 0}])
    """).replace("OCR_MODULE", repr(OCR_MODULE)),
    script("""
        import sys, pathlib, tempfile
        folder = tempfile.mkdtemp()
        pathlib.Path(folder, "bot_updates.py").write_text(BOT_MODULE)
        sys.path.insert(0, folder)
        import sentry_sdk
        sentry_sdk.init(environment="production")
        sentry_sdk.set_tag("component", "telegram-bot")
        sentry_sdk.set_tag("workspace_id", "acme")
        import bot_updates
        for _ in range(3):
            try:
                bot_updates.handle({"message": {}})
            except KeyError:
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("<script>alert('xss')</script> in a chat title", level="fatal")
        sentry_sdk.capture_message("rate limited by Telegram, retrying in 5 s", level="warning")
    """).replace("BOT_MODULE", repr(BOT_MODULE)),
    script("""
        import sentry_sdk
        from sentry_sdk.crons import capture_checkin
        sentry_sdk.init()
        capture_checkin(monitor_slug="nightly-export", status="ok", duration=12.5)
        capture_checkin(monitor_slug="hourly-sync", status="error", duration=3.0)
    """),
]


def chromium_path() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM} (Debian's chromium package; scripts/envs installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set: the browser tests must run")
    pytest.skip(reason)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SHIM_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    extra = {"SHIM_ADMIN_TOKEN": TOKEN, "SHIM_BUG_LEVEL": "error", "SHIM_WORKERS": "2"}
    with start_server(tmp_path / "data", tmp_path / "server.log", extra) as live:
        results = run_scripts(SCANNERS, live.dsn, env={"SENTRY_DEBUG": "0"})
        expect_ok(results[0], returncode=1)  # the OCR script dies of its exception
        for result in results[1:]:
            expect_ok(result)
        yield live


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


def shoot(page: Any, folder: Path, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def test_triage_in_a_browser(server: LiveServer, browser: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport=LAPTOP)
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/login?next=%2F")
    shoot(page, shots, "login")
    page.get_by_label("Admin token").fill("not the token, but long enough")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    page.get_by_label("Admin token").fill(TOKEN)
    page.keyboard.press("Enter")  # the form is usable from the keyboard alone
    expect(page.get_by_role("heading", name="Bugs", exact=True)).to_be_visible()
    page.keyboard.press("Tab")  # the first stop skips the navigation
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    rows = page.locator("table.bugs tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("table.bugs")).to_contain_text("<script>alert('xss')</script>")
    assert page.locator("script").count() == 0  # shown as text, never run
    shoot(page, shots, "bugs")

    page.get_by_label("Component").fill("ocr-analyser")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{server.url}/?q=&status=unresolved&severity=&component=ocr-analyser"
                             "&environment=&release=&workspace=&sort=last")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name="Critical: ocr-analyser - ZeroDivisionError").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("ZeroDivisionError")
    trace = page.locator(".trace")
    expect(trace.locator(".frames.app .fn")).to_contain_text(["<module>", "analyse",
                                                             "<listcomp>", "page_ratio"])
    expect(trace).to_contain_text("return words / lines")
    expect(trace).to_contain_text("ZeroDivisionError: division by zero")
    expect(page.get_by_role("table", name="Breadcrumbs, oldest first")).to_contain_text(
        "opened invoice-0042.pdf")
    expect(page.locator(".facts.wide")).to_contain_text("ocr@2.4.1")
    shoot(page, shots, "bug")
    page.locator("#h-event").evaluate("heading => heading.scrollIntoView()")
    shoot(page, shots, "bug-event", full_page=False)

    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".lead .badge").first).to_have_text("resolved")
    expect(page.locator(".history")).to_contain_text("by web")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Bugs").click()
    expect(rows).to_have_count(2)
    expect(page.locator("table.bugs")).not_to_contain_text("ZeroDivisionError")
    page.goto(f"{server.url}/?status=resolved")
    expect(rows).to_have_count(1)

    for name in ("dashboard", "logs", "monitors", "settings"):
        page.get_by_role("navigation", name="Pages").get_by_role("link", name=name.title()).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        shoot(page, shots, name)
    expect(page.locator("body")).not_to_contain_text(TOKEN)
    page.goto(f"{server.url}/monitors")
    expect(page.locator("table")).to_contain_text("hourly-sync")

    phone = browser.new_page(viewport=PHONE, storage_state=page.context.storage_state())
    phone.goto(f"{server.url}/?status=all")
    expect(phone.locator("table.bugs tbody tr")).to_have_count(3)
    shoot(phone, shots, "bugs-phone")
    phone.locator("table.bugs a.title").first.click()
    shoot(phone, shots, "bug-phone")
    phone.close()

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto(f"{server.url}/dashboard")
    expect(page).to_have_url(f"{server.url}/login?next=%2Fdashboard")
    assert {p.name for p in shots.glob("*.png")} >= {
        "login.png", "bugs.png", "bug.png", "bug-event.png", "dashboard.png", "logs.png", "monitors.png",
        "settings.png", "bugs-phone.png", "bug-phone.png"}


def test_the_browser_tests_need_chromium_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI a missing Chromium fails the run; it is never a skip there."""
    monkeypatch.setattr("test_web_browser.CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception):
        chromium_path()
