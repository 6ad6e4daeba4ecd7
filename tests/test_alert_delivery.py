"""Alerts delivered to real local receivers playing Slack, Discord, Teams, Telegram and a webhook
(``tests/receivers.py``): each payload's shape and limits, escaping, and the outcome of each kind
of answer (delivered; 429 then 200; 404 for good; no answer at all)."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alert_samples import HOSTILE, bug_alert, deliver, digest, monitor_alert
from conftest import LiveServer, expect_ok, free_port, run_script, script
from receivers import Answer, Receivers, running_receivers

from shim.alerts.facts import bug_facts
from shim.alerts.model import Alert, EventFacts
from shim.alerts.retry import next_attempt

PUBLIC_URL = "https://shim.example.org"
SECRET = "s3cret-webhook-key-0123456789"
PATHS = {
    "slack": "/slack/services/T01/B02/slackTokenXYZ123",
    "discord": "/api/webhooks/42/discordTokenABC987",
    "teams": "/teams/workflows/abc/triggers/manual/paths/invoke",
    "telegram": "/bot123456:AAtelegramTOKEN/sendMessage",
    "webhook": "/hooks/shim",
}
TOKENS = ("slackTokenXYZ123", "discordTokenABC987", "AAtelegramTOKEN")


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    with running_receivers() as running:
        yield running


def url_of(receivers: Receivers, kind: str, query: str = "") -> str:
    extra = {"telegram": "chat_id=-1001234&message_thread_id=77"}.get(kind, "")
    joined = "&".join(q for q in (extra, query) if q)
    return f"{kind}+{receivers.url}{PATHS[kind]}" + (f"?{joined}" if joined else "")


@pytest.mark.parametrize("kind", list(PATHS))
def test_each_kind_gets_its_own_payload_and_is_delivered(receivers: Receivers, kind: str) -> None:
    outcome = deliver(url_of(receivers, kind), bug_alert(), public_url=PUBLIC_URL,
                      webhook_secret=SECRET)
    assert outcome.delivered, outcome
    [got] = receivers.at(PATHS[kind])
    body = got.json
    link = f"{PUBLIC_URL}/bugs/BUG-00012"
    if kind == "slack":
        assert body["text"].startswith("New bug BUG-00012: Critical: ocr - ValueError")
        header, title, facts, detail = body["blocks"]
        assert header["text"]["text"] == "New bug BUG-00012"
        assert title["accessory"]["url"] == link
        assert "Component: ocr-worker" in [f["text"] for f in facts["fields"]]
        assert "ValueError: page 3 is empty" in detail["text"]["text"]
    elif kind == "discord":
        assert got.query["wait"] == "true"
        [embed] = body["embeds"]
        assert embed["title"] == "New bug BUG\\-00012: Critical: ocr \\- ValueError"
        assert embed["url"] == link
        assert body["allowed_mentions"] == {"parse": []}
        assert {"name": "Release", "value": "scanner@2\\.1", "inline": True} in embed["fields"]
    elif kind == "teams":
        card = body["attachments"][0]["content"]
        assert card["version"] == "1.4"
        assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in shim",
                                    "url": link}]
        assert card["body"][0]["text"] == "New bug BUG\\-00012"
    elif kind == "telegram":
        assert body["chat_id"] == -1001234 and body["message_thread_id"] == 77
        assert body["parse_mode"] == "HTML"
        assert body["text"].startswith("<b>New bug BUG-00012</b>\nCritical: ocr - ValueError")
        assert f'<a href="{link}">Open in shim</a>' in body["text"]
    else:
        expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-shim-signature"] == expected
        assert body["version"] == 1 and body["trigger"] == "new_bug" and body["project"] == "1"
        assert body["bug"] == {
            "number": "BUG-00012", "title": "Critical: ocr - ValueError", "level": "critical",
            "component": "ocr-worker", "workspace": "ws-7", "status": "open", "count": 3,
            "first_seen": "2026-12-07T10:00:00+00:00", "last_seen": "2026-12-07T11:00:00+00:00",
            "error_type": "ValueError", "error_message": "page 3 is empty",
            "top_frame": 'File "scan.py", line 12, in run', "url": link}
        assert body["event"] == {"id": "0" * 32, "environment": "production",
                                 "release": "scanner@2.1"}


def test_a_webhook_without_a_secret_is_unsigned_and_has_no_link(receivers: Receivers) -> None:
    assert deliver(url_of(receivers, "webhook"), monitor_alert()).delivered
    [got] = receivers.at(PATHS["webhook"])
    assert "x-shim-signature" not in got.headers
    assert got.json["monitor"]["url"] is None and got.json["trigger"] == "monitor_missed"


@pytest.mark.parametrize("kind", list(PATHS))
def test_long_titles_and_traces_stay_within_each_services_limits(receivers: Receivers,
                                                                  kind: str) -> None:
    huge = bug_alert(title="T&<" * 5000, error_message="m" * 50_000,
                     top_frame='File "x.py", line 1, in ' + "f" * 20_000, component="c" * 3000)
    for message in (huge, digest(1000)):
        outcome = deliver(url_of(receivers, kind), message, public_url=PUBLIC_URL)
        assert outcome.delivered, outcome  # the receivers refuse anything over a limit
    first, second = receivers.at(PATHS[kind])
    if kind == "telegram":
        assert 4000 < len(first.json["text"]) <= 4096
        assert second.json["text"].rstrip().endswith("more")
    if kind == "slack":
        assert len(second.json["blocks"]) == 50
        assert second.json["blocks"][-1]["elements"][0]["text"].startswith("… and ")
    if kind == "webhook":
        assert len(second.json["alerts"]) == 1000 and second.json["trigger"] == "digest"


def test_user_text_is_escaped_for_each_format(receivers: Receivers) -> None:
    alert = bug_alert(title=HOSTILE, error_message=HOSTILE + " ``` closes?")
    for kind in PATHS:
        assert deliver(url_of(receivers, kind), alert).delivered, kind
    slack = receivers.at(PATHS["slack"])[0].json
    assert "<script>" not in slack["text"] and "&lt;script&gt;" in slack["text"]
    assert " &amp; " in slack["text"]
    assert slack["blocks"][1]["text"] == {"type": "plain_text", "text": HOSTILE, "emoji": False}
    code = slack["blocks"][3]["text"]["text"]
    assert code.startswith("```\n") and code.endswith("\n```") and code.count("```") == 2
    discord = receivers.at(PATHS["discord"])[0].json["embeds"][0]
    assert "\\*bold\\*" in discord["title"] and "\\[x\\]\\(http://evil\\)" in discord["title"]
    assert "@\u200beveryone" in discord["title"]
    telegram = receivers.at(PATHS["telegram"])[0].json["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; *bold* _it_ &amp;" in telegram
    assert "<script>" not in telegram
    teams = receivers.at(PATHS["teams"])[0].json["attachments"][0]["content"]["body"]
    assert teams[1]["text"].startswith("<script\\>alert\\(1\\)</script\\> \\*bold\\* \\_it\\_ &")
    webhook = receivers.at(PATHS["webhook"])[0].json
    assert webhook["bug"]["title"] == HOSTILE  # JSON carries it as it is


@pytest.mark.parametrize(("kind", "answer", "wait"), [
    ("slack", Answer(429, b"rate_limited", {"Retry-After": "7"}), 7.0),
    ("discord", Answer(429, b'{"message": "You are being rate limited.", "retry_after": 1.5, '
                       b'"global": false}', {"Content-Type": "application/json"}), 1.5),
    ("telegram", Answer(429, b'{"ok": false, "error_code": 429, "description": "Too Many '
                        b'Requests: retry after 3", "parameters": {"retry_after": 3}}'), 3.0),
    ("teams", Answer(503, b"busy", {"Retry-After": "20"}), 20.0),
    ("webhook", Answer(500, b"oops"), None),
])
def test_a_busy_receiver_is_retried_after_the_wait_it_asked_for(
        receivers: Receivers, kind: str, answer: Answer, wait: float | None) -> None:
    receivers.queue(PATHS[kind], answer)
    url = url_of(receivers, kind)
    first = deliver(url, bug_alert())
    assert (first.state, first.status, first.retry_after) == ("retry", answer.status, wait)
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    when = next_attempt(first, 1, now, now, random.Random(1))
    assert when is not None
    if wait is not None:
        assert timedelta(seconds=wait) <= when - now <= timedelta(seconds=wait * 1.1)
    assert deliver(url, bug_alert()).delivered  # the second attempt gets the default 2xx
    assert len(receivers.at(PATHS[kind])) == 2


@pytest.mark.parametrize(("kind", "answer", "detail"), [
    ("slack", Answer(404, b"channel_not_found"), "404 channel_not_found"),
    ("slack", Answer(403, b"invalid_token"), "403 invalid_token"),
    ("slack", Answer(410, b"channel_is_archived"), "410 channel_is_archived"),
    ("discord", Answer(404, b'{"message": "Unknown Webhook", "code": 10015}'),
     "404 Unknown Webhook"),
    ("telegram", Answer(400, b'{"ok": false, "error_code": 400, "description": "Bad Request: '
                        b'chat not found"}'), "400 Bad Request: chat not found"),
    ("telegram", Answer(401, b'{"ok": false, "error_code": 401, "description": '
                        b'"Unauthorized"}'), "401 Unauthorized"),
    ("webhook", Answer(410, b"gone"), "410 gone"),
])
def test_a_permanent_refusal_fails_for_good_with_the_receivers_words(
        receivers: Receivers, kind: str, answer: Answer, detail: str) -> None:
    receivers.queue(PATHS[kind], answer)
    outcome = deliver(url_of(receivers, kind), bug_alert())
    assert (outcome.state, outcome.detail) == ("failed", detail)
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert next_attempt(outcome, 1, now, now) is None


def test_a_receiver_quoting_the_token_never_gets_it_shown(receivers: Receivers) -> None:
    for kind in ("slack", "discord", "telegram"):
        receivers.queue(PATHS[kind], Answer(404, f"no hook at {PATHS[kind]}".encode()))
        outcome = deliver(url_of(receivers, kind), bug_alert())
        assert outcome.state == "failed"
        assert not any(token in outcome.detail for token in TOKENS), outcome.detail
        assert "***" in outcome.detail


def test_no_answer_at_all_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    url = f"slack+http://127.0.0.1:{free_port()}/slack/services/T/B/slackTokenXYZ123"
    outcome = deliver(url, bug_alert())
    assert outcome.state == "retry" and outcome.status is None
    assert outcome.detail.startswith("could not connect")
    assert "slack+http://127.0.0.1" in caplog.text  # the delivery is logged, masked
    assert "slackTokenXYZ123" not in caplog.text


def test_a_digest_names_every_alert_up_to_the_limit(receivers: Receivers) -> None:
    mixed = digest(3)
    mixed = type(mixed)((*mixed.alerts, monitor_alert("monitor_recovered")))
    assert deliver(url_of(receivers, "discord"), mixed, public_url=PUBLIC_URL).delivered
    embed = receivers.at(PATHS["discord"])[0].json["embeds"][0]
    assert embed["title"] == "4 alerts: 3 new bugs, 1 cron recovered"
    assert f"[New bug BUG\\-00002]({PUBLIC_URL}/bugs/BUG-00002)" in embed["description"]
    assert f"({PUBLIC_URL}/monitors#monitor-nightly-scan)" in embed["description"]


@pytest.mark.parametrize("live_server", [{"SHIM_BUG_LEVEL": "error"}], indirect=True)
def test_a_bug_stored_by_a_real_server_makes_an_alert_a_receiver_takes(
        receivers: Receivers, live_server: LiveServer) -> None:
    """The path the integrator wires, short of the outbox: a real SDK's crash stored by a real
    server, the bugs row read back, its facts rendered and delivered."""
    expect_ok(run_script(script("""
        import os
        import sentry_sdk

        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], debug=True, environment="staging")
        sentry_sdk.set_tag("component", "ocr")

        def read_page():
            raise ValueError("<b>page</b> & *3* is blank")

        try:
            read_page()
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
    """), live_server.dsn))
    [row] = live_server.bugs()
    facts = bug_facts(row, "error")
    assert facts.top_frame is not None and facts.top_frame.endswith("in read_page")
    alert = Alert(trigger="new_bug", project_id="1", at=row["created_at"], bug=facts,
                  event=EventFacts(live_server.error_logs()[0]["event_id"], "staging"))
    for kind in ("telegram", "webhook"):
        assert deliver(url_of(receivers, kind), alert, public_url=PUBLIC_URL).delivered
    text = receivers.at(PATHS["telegram"])[0].json["text"]
    assert "ValueError: &lt;b&gt;page&lt;/b&gt; &amp; *3* is blank" in text
    webhook = receivers.at(PATHS["webhook"])[0].json
    assert webhook["bug"]["number"] == row["bug_number"] == "BUG-00001"
    assert webhook["bug"]["component"] == "ocr" and webhook["event"]["environment"] == "staging"
