"""Channel URLs (every form of ``SHIM_NOTIFY``), their filters and masked forms, the alert model,
the retry schedule, and the ``shim channels`` commands; a bad URL stops start-up (exit 2)
without ever printing a secret."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from alert_samples import bug_alert, monitor_alert
from conftest import free_port
from receivers import Answer, Receivers, running_receivers

from shim.alerts.channels import ChannelError, Filters, parse_channel, parse_channels
from shim.alerts.model import Alert, AlertError
from shim.alerts.outcome import Outcome
from shim.alerts.retry import GIVE_UP_AFTER, LONGEST_DELAY, backoff, next_attempt
from shim.settings import Settings, SettingsError

SLACK = "https://hooks.slack.com/services/T0001/B0001/XXslackSECRETxx"


@pytest.mark.parametrize(("url", "kind", "masked", "options"), [
    (SLACK, "slack", "slack+https://hooks.slack.com/services/***", {}),
    ("slack+http://127.0.0.1:9000/services/T/B/XXslackSECRETxx", "slack",
     "slack+http://127.0.0.1:9000/services/***", {}),
    ("https://discord.com/api/webhooks/123/XXdiscordSECRETxx", "discord",
     "discord+https://discord.com/api/***", {}),
    ("https://canary.discord.com/api/webhooks/123/XXdiscordSECRETxx?thread_id=9", "discord",
     "discord+https://canary.discord.com/api/***?thread_id=9", {}),
    ("discord+http://127.0.0.1:9000/api/webhooks/1/XXdiscordSECRETxx", "discord",
     "discord+http://127.0.0.1:9000/api/***", {}),
    ("teams+https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/"
     "invoke?api-version=2016-06-01&sp=%2Ftriggers&sig=XXteamsSECRETxx", "teams",
     "teams+https://prod-01.westeurope.logic.azure.com:443/workflows/***"
     "?api-version=***&sp=***&sig=***", {}),
    ("https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke"
     "?sig=XXteamsSECRETxx", "teams",
     "teams+https://prod-01.westeurope.logic.azure.com/workflows/***?sig=***", {}),
    ("https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/"
     "direct/workflows/abc/triggers/manual/paths/invoke?sig=XXteamsSECRETxx", "teams",
     "teams+https://default1234.56.environment.api.powerplatform.com:443/powerautomate/***"
     "?sig=***", {}),
    ("https://api.telegram.org/bot1234:XXtelegramSECRETxx/sendMessage?chat_id=-1009",
     "telegram", "telegram+https://api.telegram.org/bot***/sendMessage?chat_id=-1009",
     {"chat_id": -1009}),
    ("telegram+http://127.0.0.1:9000/bot1:XXtelegramSECRETxx/sendMessage?chat_id=%40ops&"
     "message_thread_id=5", "telegram",
     "telegram+http://127.0.0.1:9000/bot***/sendMessage?chat_id=@ops&message_thread_id=5",
     {"chat_id": "@ops", "message_thread_id": 5}),
    ("smtp://alerts%40x.org:XXmailSECRETxx@mail.x.org:587/?to=a@x.org&to=b@x.org", "email",
     "smtp://alerts%40x.org:***@mail.x.org:587/?to=a@x.org&to=b@x.org",
     {"host": "mail.x.org", "port": 587, "implicit_tls": False, "sender": "alerts@x.org",
      "recipients": ("a@x.org", "b@x.org"), "password": "XXmailSECRETxx"}),
    ("smtps://mail.x.org/?from=shim@x.org&to=a@x.org%2Cb@x.org", "email",
     "smtps://mail.x.org/?from=shim@x.org&to=a@x.org%2Cb@x.org",
     {"port": 465, "implicit_tls": True, "sender": "shim@x.org", "username": None,
      "recipients": ("a@x.org", "b@x.org")}),
    ("webhook+https://relay.x.org/in/XXhookSECRETxx", "webhook",
     "webhook+https://relay.x.org/in/***", {}),
    ("https://relay.x.org/XXhookSECRETxxLONG?key=XXhookSECRETxx", "webhook",
     "webhook+https://relay.x.org/***?key=***", {}),
    ("http://127.0.0.1:9000/hook", "webhook", "webhook+http://127.0.0.1:9000/hook", {}),
])
def test_every_channel_url_form(url: str, kind: str, masked: str,
                                options: dict[str, Any]) -> None:
    channel = parse_channel(url)
    assert (channel.kind, channel.name, channel.masked) == (kind, kind, masked)
    assert {k: channel.options[k] for k in options} == options
    assert "SECRET" not in repr(channel) and "SECRET" not in channel.masked
    assert all("SECRET" not in s for s in (channel.redact(url), channel.redact(channel.url)))


def test_the_receivers_own_query_is_kept_byte_for_byte() -> None:
    url = ("teams+https://x.logic.azure.com/workflows/a/invoke?api-version=2016-06-01&"
           "sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=a+b%2Bc%3D&level=error")
    assert parse_channel(url).url == ("https://x.logic.azure.com/workflows/a/invoke?"
                                      "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&"
                                      "sv=1.0&sig=a+b%2Bc%3D")


def test_our_parameters_are_taken_out_of_the_receivers_url() -> None:
    channel = parse_channel("webhook+https://relay.x.org/in?token=abc&level=error&component=ocr*,"
                            "scan&component=sync&workspace=ws-1&environment=prod&name=relay")
    assert channel.url == "https://relay.x.org/in?token=abc"
    assert channel.name == "relay"
    assert channel.filters == Filters("error", ("ocr*", "scan", "sync"), ("ws-1",), ("prod",))
    assert channel.filters.as_text() == ("level>=error component=ocr*,scan,sync workspace=ws-1 "
                                         "environment=prod")


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://user:XXpwSECRETxx@host/x", "not a channel URL"),
    ("XXtokenSECRETxx", "not a channel URL"),
    ("slack+ftp://host/XXtokenSECRETxx", "needs an http(s) URL"),
    ("email+smtp://u:XXpwSECRETxx@h/?to=a@b.c", "e-mail channels are smtp:// or smtps://"),
    ("https://api.telegram.org/botXXtokenSECRETxx/sendMessage", "needs ?chat_id="),
    ("https://api.telegram.org/botXXtokenSECRETxx/getMe?chat_id=1", "bot<token>/sendMessage"),
    ("telegram+https://t.x/bot1:XXtokenSECRETxx/sendMessage?chat_id=1&message_thread_id=x",
     "message_thread_id='x' must be a number"),
    ("smtp://u:XXpwSECRETxx@h:25/?from=a@b.c", "at least one to="),
    ("smtp://u:XXpwSECRETxx@h/?to=a@b.c", "needs from="),
    ("smtp://u:XXpwSECRETxx@h/?from=a@b.c&to=not-an-address", "not an e-mail address"),
    ("smtp://u:XXpwSECRETxx@h/?from=a@b.c&to=d@e.f&cc=x@y.z", "unknown e-mail parameter(s) cc"),
    ("https://hooks.slack.com:99999/services/XXtokenSECRETxx", "not a URL"),
    (SLACK + "?level=loud", "level='loud' is not one of"),
    (SLACK + "?level=error&level=info", "one minimum level="),
    (SLACK + "?name=two words", "must be letters"),
])
def test_a_bad_channel_url_is_refused_without_quoting_its_secret(url: str, problem: str) -> None:
    with pytest.raises(ChannelError) as caught:
        parse_channel(url)
    assert problem in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_channels_get_unique_names() -> None:
    channels = parse_channels(f"{SLACK}, {SLACK}?name=ops ,{SLACK},,")
    assert [c.name for c in channels] == ["slack", "ops", "slack-2"]
    with pytest.raises(ChannelError, match="two channels are named 'ops'"):
        parse_channels(f"{SLACK}?name=ops,{SLACK}?name=ops")


@pytest.mark.parametrize(("filters", "facts", "passes"), [
    (Filters(), ("debug", None, None, None), True),
    (Filters(min_level="critical"), ("error", "ocr", None, None), False),
    (Filters(min_level="error"), ("critical", "ocr", None, None), True),
    (Filters(min_level="critical"), (None, "nightly", None, None), True),  # a monitor's alert
    (Filters(components=("ocr*",)), ("critical", "ocr-worker", None, None), True),
    (Filters(components=("ocr*",)), ("critical", "scanner", None, None), False),
    (Filters(components=("ocr*",)), ("critical", None, None, None), False),
    (Filters(workspaces=("ws-1", "ws-2")), ("error", "x", "ws-2", None), True),
    (Filters(environments=("production",)), ("error", "x", None, "staging"), False),
])
def test_filters(filters: Filters, facts: tuple[Any, ...], passes: bool) -> None:
    assert filters.matches(*facts) is passes


def test_alerts_go_to_json_and_back_and_must_hold_together() -> None:
    for alert in (bug_alert(), bug_alert("regression"), monitor_alert()):
        assert Alert.from_json(orjson.loads(orjson.dumps(alert.as_json()))) == alert
    assert monitor_alert().component == "nightly-scan"
    assert bug_alert().environment == "production"
    with pytest.raises(AlertError, match="needs its bug"):
        Alert(trigger="new_bug", project_id="1", at="x")
    with pytest.raises(AlertError, match="needs its window"):
        Alert(trigger="frequency", project_id="1", at="x", bug=bug_alert().bug)
    with pytest.raises(AlertError, match="unknown trigger"):
        Alert(trigger="storm", project_id="1", at="x")


def test_backoff_doubles_with_jitter_and_gives_up_after_a_day() -> None:
    rng = random.Random(7)
    waits = [backoff(n, rng) for n in range(1, 12)]
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20 and 20 <= waits[2] <= 40
    assert all(LONGEST_DELAY / 2 <= w <= LONGEST_DELAY for w in waits[9:])
    assert len({round(backoff(3, rng), 6) for _ in range(20)}) > 1  # jitter
    first = datetime(2026, 12, 7, tzinfo=UTC)
    retry = Outcome("retry", "503 busy", 503)
    assert next_attempt(retry, 30, first, first + timedelta(hours=20), rng) is not None
    assert next_attempt(retry, 30, first, first + GIVE_UP_AFTER - timedelta(seconds=1),
                        rng) is None
    assert next_attempt(Outcome("delivered", "200 ok", 200), 1, first, first) is None


def test_a_bad_shim_notify_stops_start_up_naming_the_variable_not_the_secret() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SHIM_NOTIFY": f"{SLACK},smtp://u:XXpwSECRETxx@h/?to=a@b.c"})
    assert str(caught.value).startswith("SHIM_NOTIFY: smtp://h/...: an e-mail channel needs from=")
    assert "SECRET" not in str(caught.value)
    for command in (["channels", "list"], ["serve", "--port", str(free_port())]):
        result = subprocess.run([sys.executable, "-m", "shim", *command], capture_output=True,
                                text=True, timeout=30, env=_env(
                                    "telegram+https://x.org/botXXtokenSECRETxx/sendMessage"))
        assert result.returncode == 2
        assert "shim: bad setting: SHIM_NOTIFY: telegram+https://x.org/...: a Telegram " \
               "channel needs ?chat_id=<id>" in result.stderr
        assert "SECRET" not in result.stderr + result.stdout


def test_settings_never_show_the_webhook_secret() -> None:
    settings = Settings.from_env({"SHIM_WEBHOOK_SECRET": "XXwebhookSECRETxx123",
                                  "SHIM_NOTIFY": SLACK})
    assert settings.webhook_secret == "XXwebhookSECRETxx123"
    assert "SECRET" not in repr(settings)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SHIM_WEBHOOK_SECRET": "short"})
    assert "short" not in str(caught.value) and "at least 16" in str(caught.value)


def _env(notify: str) -> dict[str, str]:
    from conftest import _clean_env

    return {**_clean_env(), "SHIM_NOTIFY": notify, "COLUMNS": "200"}


def shim(*args: str, notify: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shim", *args], capture_output=True, text=True,
                          timeout=60, env=_env(notify))


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    with running_receivers() as running:
        yield running


def test_channels_list_shows_kinds_filters_and_masked_urls(receivers: Receivers) -> None:
    notify = (f"{SLACK}?level=critical&component=ocr*,"
              f"telegram+{receivers.url}/bot1:XXtelegramSECRETxx/sendMessage?chat_id=5&name=tg")
    listed = shim("channels", "list", notify=notify)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "FILTERS", "URL"]
    assert lines[1].split() == ["slack", "slack", "level>=critical", "component=ocr*",
                                "slack+https://hooks.slack.com/services/***"]
    assert lines[2].split() == ["tg", "telegram", "-",
                                f"telegram+{receivers.url}/bot***/sendMessage?chat_id=5"]
    as_json = orjson.loads(shim("channels", "list", "--json", notify=notify).stdout)
    assert as_json[0]["filters"] == {"level": "critical", "component": ["ocr*"], "workspace": [],
                                     "environment": []}
    assert "SECRET" not in listed.stdout + listed.stderr + str(as_json)
    assert shim("channels", "list", notify="").stdout.startswith("no channels")


def test_channels_test_sends_and_prints_the_receivers_answer(receivers: Receivers) -> None:
    path = "/slack/services/T/B/XXslackSECRETxx"
    notify = f"slack+{receivers.url}{path}?name=ops"
    sent = shim("channels", "test", "ops", notify=notify)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines() == [
        f"ops (slack+{receivers.url}/slack/***): delivered", "answer: 200 ok"]
    [got] = receivers.at(path)
    assert got.json["blocks"][0]["text"]["text"] == "Test message"
    receivers.queue(path, Answer(404, b"channel_not_found"))
    failed = shim("channels", "test", "--json", f"slack+{receivers.url}{path}", notify="")
    assert failed.returncode == 1
    assert orjson.loads(failed.stdout)["answer"] == "404 channel_not_found"
    unknown = shim("channels", "test", "nope", notify=notify)
    assert unknown.returncode == 1
    assert "no channel named 'nope'; configured: ops" in unknown.stderr
    assert "SECRET" not in sent.stdout + sent.stderr + failed.stdout + failed.stderr
