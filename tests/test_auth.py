"""DSN keys with an expiry (``SHIM_PUBLIC_KEYS=new:1,old:1:until=...``): how the setting is read,
how ``Keys.check`` answers before, at and after the expiry (with an injected clock), what
``shim dsn`` prints, and a real server refusing an expired key while it takes the new one."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import start_server
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from starlette.testclient import TestClient

from shim.app import create_app
from shim.cli import main, print_dsns
from shim.core.auth import Keys
from shim.core.errors import Forbidden, Unauthorized
from shim.settings import Settings, SettingsError

NEW = "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"
OLD = "01d01d01d01d01d01d01d01d01d01d01"
END = datetime(2026, 12, 31, tzinfo=UTC)


def parse(raw: str) -> object:
    return Settings.from_env({"SHIM_PUBLIC_KEYS": raw}).public_keys


# -- the setting ----

@pytest.mark.parametrize(("raw", "expected"), [
    ("abc", (("abc", None),)),
    ("abc:7", (("abc", "7"),)),
    ("abc:7:until=2026-12-31T00:00:00Z", (("abc", "7", END),)),
    ("abc::until=2026-12-31T00:00:00Z", (("abc", None, END),)),
    ("abc:until=2026-12-31T00:00:00Z", (("abc", None, END),)),
    (" abc : 7 : until = 2026-12-31T00:00:00Z ", (("abc", "7", END),)),
    # No offset: UTC. An offset: converted to UTC.
    ("abc:7:until=2026-12-31T00:00:00", (("abc", "7", END),)),
    ("abc:7:until=2026-12-31T02:00:00+02:00", (("abc", "7", END),)),
    ("abc:7:until=2026-12-31T00:00:00.250Z",
     (("abc", "7", END + timedelta(milliseconds=250)),)),
    # A bare date: the key works through that whole day (UTC).
    ("abc:until=2026-12-30", (("abc", None, END),)),
    ("new:1,old:1:until=2026-12-31T00:00:00Z", (("new", "1"), ("old", "1", END))),
])
def test_keys_with_and_without_an_expiry_are_read(raw: str, expected: object) -> None:
    assert parse(raw) == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ("abc:7:until=2026-13-01", "not an ISO 8601 date or time"),
    ("abc:7:until=tomorrow", "not an ISO 8601 date or time"),
    ("abc:7:until=", "not an ISO 8601 date or time"),
    ("abc:7:until", "not an ISO 8601 date or time"),
    ("abc:7:until=9999-12-31", "not an ISO 8601 date or time"),
    ("abc:7:expires=2026-12-31", "unknown option 'expires=2026-12-31'"),
    ("abc:7:8", "unknown option '8'"),
    ("abc:seven:until=2026-12-31", "project id 'seven'"),
    ("new,bad key!:until=2026-12-31", "letters and digits only"),
])
def test_a_bad_expiry_fails_at_start_naming_the_variable(raw: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse(raw)
    assert str(caught.value).startswith("SHIM_PUBLIC_KEYS=")
    assert problem in str(caught.value)


def test_serve_refuses_to_start_with_a_bad_expiry(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHIM_PUBLIC_KEYS", f"{NEW}:1,{OLD}:1:until=31/12/2026")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "shim: bad setting: SHIM_PUBLIC_KEYS=" in err
    assert "until='31/12/2026'" in err


# -- Keys.check against a clock ----

class Clock:
    def __init__(self, now: datetime) -> None:
        self.time = now

    def __call__(self) -> datetime:
        return self.time


def rotating(now: datetime) -> tuple[Keys, Clock]:
    clock = Clock(now)
    return Keys(((NEW, "1"), (OLD, "1", END), ("anyproject", None, END)), clock=clock), clock


@pytest.mark.parametrize("now", [END - timedelta(days=30), END - timedelta(microseconds=1)])
def test_before_its_expiry_a_key_works_as_any_other(now: datetime) -> None:
    keys, _ = rotating(now)
    keys.check(OLD, "1")
    keys.check(NEW, "1")
    keys.check("anyproject", "5")
    assert list(keys) == [(NEW, "1"), (OLD, "1"), ("anyproject", None)]


@pytest.mark.parametrize("now", [END, END + timedelta(microseconds=1), END + timedelta(days=400)])
def test_from_its_expiry_a_key_is_refused_with_401_saying_so(now: datetime) -> None:
    keys, _ = rotating(now)
    for key, project in ((OLD, "1"), (OLD, "2"), ("anyproject", "5")):
        with pytest.raises(Unauthorized) as caught:
            keys.check(key, project)
        assert caught.value.detail == (
            "this DSN key expired at 2026-12-31T00:00:00Z; use the new DSN")
        assert caught.value.body() == {"detail": caught.value.detail, "code": "unauthorized",
                                       "expired_at": "2026-12-31T00:00:00Z"}
    keys.check(NEW, "1")
    assert list(keys) == [(NEW, "1")]


@pytest.mark.parametrize("now", [END - timedelta(days=1), END + timedelta(days=1)])
def test_unknown_and_wrong_project_answers_are_unchanged(now: datetime) -> None:
    keys, _ = rotating(now)
    with pytest.raises(Unauthorized, match="unknown DSN key"):
        keys.check("f" * 32, "1")
    with pytest.raises(Unauthorized, match="missing DSN key"):
        keys.check(None, "1")
    with pytest.raises(Forbidden, match="not valid for project 2"):
        keys.check(NEW, "2")


def test_an_expiring_key_is_refused_for_another_project_before_its_expiry() -> None:
    keys, _ = rotating(END - timedelta(days=1))
    with pytest.raises(Forbidden, match="not valid for project 2"):
        keys.check(OLD, "2")


def test_the_clock_is_read_on_every_check() -> None:
    keys, clock = rotating(END - timedelta(seconds=1))
    keys.check(OLD, "1")
    clock.time = END
    with pytest.raises(Unauthorized, match="expired"):
        keys.check(OLD, "1")


def test_a_key_in_use_near_its_expiry_is_logged_once_an_hour(
        caplog: pytest.LogCaptureFixture) -> None:
    keys, clock = rotating(END - timedelta(days=3))
    caplog.set_level(logging.WARNING, logger="shim.auth")
    keys.check(OLD, "1")  # three days left: no warning yet
    assert caplog.messages == []
    clock.time = END - timedelta(hours=23)
    for _ in range(5):
        keys.check(OLD, "1")
    clock.time += timedelta(minutes=59)
    keys.check(OLD, "1")
    assert caplog.messages == [
        f"DSN key {OLD[:8]}... is still in use and expires at 2026-12-31T00:00:00Z: move the "
        "scripts that send with it to the new DSN"]
    clock.time += timedelta(minutes=1)
    keys.check(OLD, "1")
    keys.check(NEW, "1")  # never expires: never warned about
    assert len(caplog.messages) == 2


# -- what is printed ----

def test_dsn_lists_expiring_keys_apart_and_only_warns_about_expired_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path)})
    keys = Keys(((NEW, "1"), (OLD, "1", END), ("gone", "2", END - timedelta(days=60))),
                clock=lambda: END - timedelta(days=30))
    print_dsns(settings, keys)
    out, err = capsys.readouterr()
    assert out == (f"DSN: http://{NEW}@127.0.0.1:8000/1\n"
                   f"Expiring DSN, refused from 2026-12-31T00:00:00Z: http://{OLD}@127.0.0.1:8000/1\n")
    assert err == ("shim: warning: the DSN key gone expired at 2026-11-01T00:00:00Z and is refused; "
                   "remove it from SHIM_PUBLIC_KEYS\n")


def test_dsn_warns_when_every_key_has_expired(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path)})
    print_dsns(settings, Keys(((OLD, "1", END),), clock=lambda: END))
    out, err = capsys.readouterr()
    assert out == ""
    assert "expired at 2026-12-31T00:00:00Z" in err
    assert "every key in SHIM_PUBLIC_KEYS has expired" in err


# -- through the app ----

def envelope() -> bytes:
    event_id = uuid.uuid4().hex
    item = Item(payload=PayloadRef(json={"event_id": event_id, "level": "error",
                                         "message": "rotation", "platform": "python"}),
                type="event")
    return Envelope(headers={"event_id": event_id}, items=[item]).serialize()


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=test/1, sentry_key={key}"}


def test_a_running_app_starts_refusing_a_key_when_it_expires(tmp_path: Path) -> None:
    clock = Clock(END - timedelta(seconds=1))
    keys = Keys(((NEW, "1"), (OLD, "1", END)), clock=clock)
    with TestClient(create_app(Settings.from_env({"SHIM_DATA_DIR": str(tmp_path)}), keys)) as client:
        assert client.post("/api/1/envelope/", content=envelope(), headers=auth(OLD)).status_code == 200
        clock.time = END
        refused = client.post("/api/1/envelope/", content=envelope(), headers=auth(OLD))
        assert refused.status_code == 401
        assert refused.json()["detail"] == (
            "this DSN key expired at 2026-12-31T00:00:00Z; use the new DSN")
        assert client.post(f"/api/1/store/?sentry_key={OLD}",
                           json={"message": "legacy"}).status_code == 401
        assert client.post("/api/1/envelope/", content=envelope(), headers=auth(NEW)).status_code == 200


def send(url: str, key: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"{url}/api/1/envelope/", data=envelope(), method="POST",
                                     headers={**auth(key), "Content-Type": "application/x-sentry-envelope"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_real_server_refuses_a_key_past_its_expiry_and_takes_the_new_one(tmp_path: Path) -> None:
    keys = f"{NEW}:1,{OLD}:1:until=2020-01-01T00:00:00Z"
    with start_server(tmp_path / "data", tmp_path / "server.log",
                      {"SHIM_PUBLIC_KEYS": keys}) as server:
        status, body = send(server.url, OLD)
        assert status == 401
        assert body == {"detail": "this DSN key expired at 2020-01-01T00:00:00Z; use the new DSN",
                        "code": "unauthorized", "expired_at": "2020-01-01T00:00:00Z"}
        status, body = send(server.url, NEW)
        assert status == 200 and "id" in body
        output = server.log()
    assert f"DSN: http://{NEW}@" in output
    assert f"http://{OLD}@" not in output
    assert f"the DSN key {OLD} expired at 2020-01-01T00:00:00Z" in output
    assert len(server.error_logs()) == 1


def test_a_real_server_takes_both_keys_before_the_expiry(tmp_path: Path) -> None:
    keys = f"{NEW}:1,{OLD}:1:until=2999-01-01"
    with start_server(tmp_path / "data", tmp_path / "server.log",
                      {"SHIM_PUBLIC_KEYS": keys}) as server:
        assert send(server.url, OLD)[0] == 200
        assert send(server.url, NEW)[0] == 200
        output = server.log()
    assert f"DSN: http://{NEW}@" in output
    assert f"Expiring DSN, refused from 2999-01-02T00:00:00Z: http://{OLD}@" in output
    assert "shim: warning" not in output
    assert len(server.error_logs()) == 2
