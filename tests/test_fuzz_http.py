"""Fuzzing the HTTP surface in-process: arbitrary bodies, encodings, headers and paths never give a
500 or an unhandled exception, and every refusal is the one JSON error shape.

The examples are the same on every run (``derandomize``), so the suite passes or fails the same
way in CI and here; exploring new inputs is ``python -m bench.fuzz``'s job (bench/README.md)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from starlette.testclient import TestClient

from shim.app import create_app
from shim.core.auth import Keys
from shim.settings import Settings

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ALLOWED = {200, 400, 401, 403, 404, 405, 408, 413, 429}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    settings = Settings.from_env({"SHIM_DATA_DIR": str(data_dir), "SHIM_MAX_BODY_BYTES": "65536",
                                  "SHIM_MAX_DECODED_BYTES": "262144",
                                  "SHIM_RATE_LIMIT_PER_KEY": "0"})
    # raise_server_exceptions: an exception escaping the app fails the test outright.
    with TestClient(create_app(settings, Keys(((KEY, None),)))) as test_client:
        yield test_client


json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)

events = st.dictionaries(
    st.sampled_from(["message", "level", "exception", "tags", "extra", "logentry", "timestamp",
                     "fingerprint", "contexts", "breadcrumbs", "logger", "event_id", "request"]),
    json_values, max_size=8)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    items = [Item(payload=PayloadRef(json=draw(events)),
                  type=draw(st.sampled_from(["event", "log", "check_in", "transaction",
                                             "session", "attachment", "x-unknown"])))
             for _ in range(draw(st.integers(0, 3)))]
    body = Envelope(headers=draw(st.dictionaries(st.sampled_from(["event_id", "dsn", "sdk"]),
                                                 json_values, max_size=2)), items=items).serialize()
    if draw(st.booleans()):  # damage it
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=16)) + body[cut + 1:]
    return body


ENCODERS = {
    None: lambda b: b,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: b,  # claims zstd, is not
    "gzip, br": lambda b: brotli.compress(gzip.compress(b)),
    "bogus": lambda b: b,
}


@settings(max_examples=300, deadline=None, derandomize=True,  # the same examples every run (CI)
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    body=st.one_of(envelopes(), st.binary(max_size=2048),
                   events.map(lambda e: json.dumps(e).encode())),  # big ints too
    encoding=st.sampled_from(sorted(ENCODERS, key=str)),
    path=st.sampled_from(["/api/1/envelope/", "/api/1/store/", "/api/abc/envelope/",
                          "/api/99999999999999999999/envelope/", "/api/1/envelope",
                          "/api/1/other/", "/healthz"]),
    auth=st.sampled_from([f"Sentry sentry_key={KEY}", "Sentry sentry_key=nope", "", "garbage",
                          f"sentry_key={KEY},sentry_version=7", "Sentry ="]),
    content_type=st.sampled_from(["", "text/plain", "application/json", "\x00weird"]),
)
def test_no_request_breaks_the_server(client: TestClient, body: bytes, encoding: str | None,
                                      path: str, auth: str, content_type: str) -> None:
    headers = {"X-Sentry-Auth": auth}
    if encoding:
        headers["Content-Encoding"] = encoding
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(path, content=ENCODERS[encoding](body), headers=headers)
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows the spread
    assert response.status_code in ALLOWED, response.text
    if response.status_code >= 400:
        payload = response.json()
        assert isinstance(payload["detail"], str) and payload["code"]
