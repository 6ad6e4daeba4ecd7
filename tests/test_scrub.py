"""Secrets never reach the database or the backup files.

A table for the scrubber itself, then planted secrets sent by a real sentry_sdk client (with PII
sending turned on, so the SDK's own scrubbing does not hide a gap in ours) through a live server:
none of them may appear in any byte of the database or of the files under the data dir.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import LiveServer, expect_ok, run_script, script, sdk_python
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shim.core.scrub import _BEARER, _CARD, _FOUR_DIGITS, FILTERED, Scrubber, _card, scrub_event

SCRUBBER = Scrubber(["employee_number"])


@pytest.mark.parametrize(("value", "expected"), [
    ({"password": "hunter2"}, {"password": FILTERED}),
    ({"DB_PASSWORD": "x", "user": "bob"}, {"DB_PASSWORD": FILTERED, "user": "bob"}),
    ({"X-Api-Key": "k"}, {"X-Api-Key": FILTERED}),
    ({"access_token": "t", "refresh-token": "r"}, {"access_token": FILTERED,
                                                   "refresh-token": FILTERED}),
    ({"nested": {"deeper": [{"secret": "s"}]}}, {"nested": {"deeper": [{"secret": FILTERED}]}}),
    ([["Authorization", "Basic Zm9v"], ["Accept", "*/*"]],
     [["Authorization", FILTERED], ["Accept", "*/*"]]),
    ({"Cookie": "sessionid=abc"}, {"Cookie": FILTERED}),
    ({"employee_number": "E-1"}, {"employee_number": FILTERED}),  # a configured extra key
    ({"password": None, "token": ""}, {"password": None, "token": ""}),  # nothing to hide
    ("Authorization: Bearer abcdefgh12345678", f"Authorization: Bearer {FILTERED}"),
    ("GET /x?q=1&api_key=abc123&page=2", f"GET /x?q=1&api_key={FILTERED}&page=2"),
    ('    PASSWORD = "hunter2"', f'    PASSWORD = "{FILTERED}"'),
    ("card 4111 1111 1111 1111 declined", f"card {FILTERED} declined"),
    ("order 4111111111111112 shipped", "order 4111111111111112 shipped"),  # fails Luhn: kept
    ("page 3 of 12", "page 3 of 12"),
    # A UUID whose digit groups happen to pass the Luhn check is an id, not a card.
    ("payment 1dc04567-8901-2345-6783-743f96077baa", "payment 1dc04567-8901-2345-6783-743f96077baa"),
    ("id 4111111111111111abc", "id 4111111111111111abc"),
])
def test_scrubber(value: object, expected: object) -> None:
    assert SCRUBBER.value(value) == expected


def test_event_ids_and_fingerprints_are_left_alone() -> None:
    event = {"event_id": "a" * 32, "fingerprint": ["token-refresh"], "message": "token=abc"}
    scrubbed = scrub_event(event, SCRUBBER)
    assert scrubbed["event_id"] == "a" * 32
    assert scrubbed["fingerprint"] == ["token-refresh"]
    assert scrubbed["message"] == f"token={FILTERED}"
    assert event["message"] == "token=abc"  # the input is not modified


SECRETS = ["hunter2-pass", "tok_live_8f8f8f8f", "sk_extra_123456", "cookie-value-987",
           "5555555555554444", "bearer-secret-abcdef", "frame-local-s3cr3t", "crumb-pw-777"]

PLANTED = script("""
    import logging, sentry_sdk
    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
        # 3.x collects what 2.x's send_default_pii did by default (local variables included), and
        # turns stdlib records into events only with the integration's event level; at its
        # default level the critical record below is also sent as a Sentry Log.
        from sentry_sdk.integrations.logging import LoggingIntegration
        options = {"integrations": [LoggingIntegration(event_level=logging.ERROR)]}
    else:
        options = {"send_default_pii": True, "include_local_variables": True}
    sentry_sdk.init(dsn=__import__("os").environ["SENTRY_DSN"], default_integrations=True,
                    **options)
    sentry_sdk.set_tag("component", "billing")
    sentry_sdk.set_extra("payment", {"api_key": "sk_extra_123456", "amount": 12})
    sentry_sdk.set_context("auth", {"session_token": "tok_live_8f8f8f8f"})
    sentry_sdk.add_breadcrumb(category="db", message="login password=crumb-pw-777",
                              data={"password": "crumb-pw-777"})

    def charge(card_number):
        api_secret = "frame-local-s3cr3t"
        raise ValueError(f"card {card_number} declined for Bearer bearer-secret-abcdef")

    sentry_sdk.capture_event({
        "message": "login failed, password=hunter2-pass",
        "level": "fatal",
        "request": {"url": "https://pay.example/charge", "method": "POST",
                    "headers": {"Authorization": "Bearer bearer-secret-abcdef",
                                "Cookie": "sid=cookie-value-987"},
                    "cookies": {"sid": "cookie-value-987"},
                    "data": {"password": "hunter2-pass"}},
    })
    try:
        charge("5555 5555 5555 4444")
    except ValueError:
        sentry_sdk.capture_exception()
    logging.getLogger("billing").critical("retrying with token tok_live_8f8f8f8f")
""")


def every_byte_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def test_planted_secrets_survive_nowhere(live_server: LiveServer, sdk_major: str,
                                         tmp_path: Path) -> None:
    expect_ok(run_script(PLANTED, live_server.dsn, python=sdk_python(sdk_major), cwd=tmp_path))
    rows = live_server.error_logs()
    assert [r["item_type"] for r in rows].count("event") == 3
    # 3.x: the critical record as a Sentry Log too, its body holding a planted token.
    logs = [r for r in rows if r["item_type"] == "log"]
    assert [r["message"] for r in logs] == (
        [f"retrying with token {FILTERED}"] if sdk_major == "3" else [])
    assert any(FILTERED in (r["context"] or "") for r in rows)
    assert any(r["error_type"] == "ValueError" for r in rows)
    stored = every_byte_under(live_server.data_dir)  # database, WAL, backup log, key file...
    assert b"billing" in stored  # the data is there...
    for secret in [*SECRETS, "5555 5555 5555 4444"]:
        assert secret.encode() not in stored, secret  # ...the secrets are not


@pytest.mark.parametrize(("key", "sensitive"), [
    ("Set-Cookie", True), ("set_cookie", True), ("setcookie", True), ("X-API-KEY", True),
    ("apikey", True), ("set]cookie", True),  # still contains "cookie"
    ("api]key", False), ("filename", False), ("lineno", False), ("monkey", False),
])
def test_sensitive_key_names(key: str, sensitive: bool) -> None:
    assert SCRUBBER.is_sensitive(key) is sensitive


# --- the one-pass test before the walk -----------------------------------------------------------

WALK_ONLY = Scrubber(["employee_number", 'odd"key', "ключ"], pretest=False)
PRETESTED = Scrubber(["employee_number", 'odd"key', "ключ"])

# Text built from what the walk reacts to, the characters JSON escapes, and lookalikes of both.
_PIECES = ["password", "PassWord", "api-key", "apikey", "token", "bearer ", "basic ", "Bearer abc",
           "employee_number", 'odd"key', "ключ", "КЛЮЧ", "=", ": ", "4111", "1111", " ", "-",
           "٤١١١", "\u017f", "\u212a", "\u0130", "\u0131", '"', "\\", "\n", "\x00", "page",
           "id", "x", "7", "Привет"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(_JSON)
@example({"pr\u0131vate_key": "x"})  # a dotless i, which Python's IGNORECASE takes for an i
@example({"note": "card \u0664\u0661\u0661\u0661 " + "\u0661\u0661\u0661\u0661 " * 3})  # digits
@example(["4111 1111 1111 1111"])
@example({'odd"key': "v", "n": 'x odd"key=abc'})  # a word JSON writes escaped
@example([["ключ", "v"]])  # a configured word outside ASCII
@example({"auth_token": "x"})  # each way a key word can matter: in a key,
@example({"headers": [["Cookie", "x"]]})  # in a [name, value] pair,
@example({"note": "retry with token = abc"})  # before an assignment's '=',
@example({"note": "sent with Bearer abcdefghijk"})  # before a bearer token
def test_the_pretest_never_skips_what_the_walk_would_change(value: object) -> None:
    assert PRETESTED.value(value) == WALK_ONLY.value(value)
    assert scrub_event({"extra": value}, PRETESTED) == scrub_event({"extra": value}, WALK_ONLY)


def _text_tried_in_full(scrubber: Scrubber, value: str) -> str:
    """``Scrubber.text`` trying the assignment pattern whenever a key word is there at all."""
    if len(value) < 5:
        return value
    lower = value.lower()
    if "bearer" in lower or "basic" in lower or "token" in lower:
        value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)
    if scrubber._stems.search(lower):
        value = scrubber._assignment.sub(
            lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{FILTERED}", value)
    if _FOUR_DIGITS.search(value):
        value = _CARD.sub(_card, value)
    return value


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([*_PIECES, "unexpected token at offset 12", "secret", "k:",
                                 " = ", "auth_token"]), max_size=10).map("".join))
@example("unexpected token at offset 12: retry")
@example("a: unexpected token")
@example("token\u0130d: 12345678")  # a dotted capital I, two characters once lowered
def test_text_tries_assignments_only_where_one_could_be(value: str) -> None:
    assert PRETESTED.text(value) == _text_tried_in_full(PRETESTED, value)


def test_a_clean_part_is_not_walked_and_a_suspect_one_is() -> None:
    crumbs = {"values": [{"message": f"fetched page {n}", "category": "http"} for n in range(50)]}
    assert PRETESTED.value(crumbs) is crumbs  # nothing to change: no copy was made
    crumbs["values"][7]["data"] = {"token": "abc"}
    scrubbed = PRETESTED.value(crumbs)
    assert scrubbed["values"][7]["data"] == {"token": FILTERED}
    assert scrubbed["values"][8] is crumbs["values"][8]  # its clean siblings are kept as they are


@pytest.mark.parametrize(("value", "suspect"), [
    ({"value": "unexpected token at offset 2192"}, False),  # a key word in prose
    ({"message": "password reset mail sent to a user"}, False),
    ({"value": "retry: unexpected token"}, False),  # the ':' comes before the word
    ({"auth_token": "x"}, True),  # in a key
    ({"headers": [["Cookie", "x"]]}, True),  # a [name, value] pair
    ({"message": "token = abc"}, True),  # an assignment
    ({"message": "sent with Bearer abcdefghijk"}, True),
    ({"message": "card 4111 1111 1111 1111"}, True),
])
def test_the_pretest_looks_for_key_words_where_the_walk_would_act(value: object,
                                                                  suspect: bool) -> None:
    assert isinstance(value, dict)
    assert PRETESTED.could_hold_secrets(value) is suspect
    assert SCRUBBER.could_hold_secrets(value) is suspect


def test_the_non_ascii_lookalikes_are_all_listed() -> None:
    """The pretest names the characters outside ASCII that Python's case-insensitive matching
    takes for an ASCII letter; it must name every one of them."""
    every = "".join(chr(c) for c in range(128, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    lookalikes = set(re.findall("(?i)[a-z]", every))
    assert lookalikes == {"\u0130", "\u0131", "\u017f", "\u212a"}
