"""Rate limits: token buckets per key and overall, the 429 answer sentry-sdk understands, and a
real SDK backing off after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LiveServer, answers_of, run_script, script
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from starlette.testclient import TestClient

from shim.app import create_app
from shim.core.auth import Keys
from shim.ratelimit import RateLimited, RateLimiter
from shim.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_a_minute_passes_then_the_key_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(per_key=60, overall=0, clock=clock)
    limiter.take("a", 60)  # a whole minute's worth at once is a burst the bucket holds
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", 1)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "1"  # one token refills in one second
    assert refused.value.headers["X-Sentry-Rate-Limits"] == "1:error;default;log_item:key"
    limiter.take("b", 60)  # another key has its own bucket
    clock.now += 1.0
    limiter.take("a", 1)
    assert limiter.refused == 1


def test_retry_after_is_whole_seconds_until_enough_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(per_key=6, overall=0, clock=clock)  # one token every 10 s
    limiter.take("a", 6)
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", 2)
    assert refused.value.headers["Retry-After"] == "20"
    clock.now += 20
    limiter.take("a", 2)


def test_the_overall_limit_spans_keys_and_a_refusal_spends_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(per_key=0, overall=10, clock=clock)
    limiter.take("a", 6)
    with pytest.raises(RateLimited) as refused:
        limiter.take("b", 5)
    assert refused.value.headers["X-Sentry-Rate-Limits"].endswith(":organization")
    limiter.take("b", 4)  # the refused 5 were not spent


def test_no_limits_and_free_items() -> None:
    limiter = RateLimiter(per_key=0, overall=0)
    for _ in range(1000):
        limiter.take("a", 100)
    RateLimiter(per_key=1, overall=0).take("a", 0)  # check-ins, sessions...: cost 0


KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.from_env({"SHIM_DATA_DIR": str(tmp_path), "SHIM_RATE_LIMIT_PER_KEY": "3"})
    with TestClient(create_app(settings, Keys(((KEY, None),)))) as test_client:
        yield test_client


def _event_envelope() -> bytes:
    event_id = uuid.uuid4().hex
    return Envelope(headers={"event_id": event_id}, items=[
        Item(payload=PayloadRef(json={"event_id": event_id, "message": "storm", "level": "error"}),
             type="event")]).serialize()


def test_the_fourth_event_in_a_burst_gets_429_and_is_not_stored(client: TestClient) -> None:
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={KEY}"}
    statuses = [client.post("/api/1/envelope/", content=_event_envelope(), headers=auth)
                for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-sentry-rate-limits"].endswith(":error;default;log_item:key")
    check_in = Envelope(items=[Item(payload=PayloadRef(json={
        "check_in_id": uuid.uuid4().hex, "monitor_slug": "nightly", "status": "ok"}),
        type="check_in")]).serialize()
    assert client.post("/api/1/envelope/", content=check_in, headers=auth).status_code == 200
    health = client.get("/healthz").json()
    assert health["events_stored"] == 3
    assert health["rate_limited"] == 1


@pytest.mark.parametrize("live_server", [{"SHIM_RATE_LIMIT_PER_KEY": "5"}], indirect=True)
def test_the_sdk_backs_off_after_a_429(live_server: LiveServer) -> None:
    result = run_script(script("""
        import os, sentry_sdk, probe
        sentry_sdk.init(dsn=os.environ["SENTRY_DSN"])
        probe.record_answers()
        for i in range(20):
            sentry_sdk.capture_message(f"storm {i}", level="error")
            sentry_sdk.flush(timeout=5)
        probe.print_answers()
    """), live_server.dsn)
    answers = answers_of(result)
    assert [a["status"] for a in answers[:6]] == [200] * 5 + [429]
    # After the 429 the SDK holds errors back for Retry-After seconds: the other 14 events never
    # left; what it still sent are client reports (no event, so no id) counting what it dropped.
    after = answers[6:]
    assert after and all(a["status"] == 200 and a["body"] == "{}" for a in after), after
    assert len(live_server.error_logs()) == 5
    assert live_server.item_counts().get("client_report", 0) >= 1
