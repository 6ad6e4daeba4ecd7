"""Imported by the end-to-end child scripts (``tests/scripts`` is on their PYTHONPATH).

``record_answers()`` wraps the live transport so every request the SDK makes is remembered with
the Content-Encoding it sent and the status and body the server answered; ``print_answers()``
flushes the SDK and prints them as one ``ANSWERS <json>`` line for the test to read.
"""

from __future__ import annotations

import json
from typing import Any

import sentry_sdk

_answers: list[dict[str, Any]] = []


def record_answers() -> list[dict[str, Any]]:
    transport = sentry_sdk.get_client().transport
    if transport is None:
        raise RuntimeError("sentry_sdk.init(dsn=...) first")
    original = transport._request

    def request(method: str, endpoint_type: Any, body: Any, headers: Any) -> Any:
        response = original(method, endpoint_type, body, headers)
        _answers.append({
            "status": response.status,
            "body": response.data.decode("utf-8", "replace"),
            "encoding": dict(headers).get("Content-Encoding"),
            "bytes": len(body) if isinstance(body, bytes | bytearray) else None,
        })
        return response

    transport._request = request
    return _answers


def print_answers() -> None:
    sentry_sdk.flush(timeout=10)
    print("ANSWERS " + json.dumps(_answers), flush=True)
