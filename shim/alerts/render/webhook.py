"""Our own webhook: a JSON document (``version`` 1) signed with HMAC-SHA256.

The document has ``version``, ``trigger``, ``project``, ``at``, ``alert_id`` and, as they apply,
``bug`` (number, title, level, component, workspace, status, count, first_seen, last_seen,
error_type, error_message, top_frame, url), ``event`` (id, environment, release), ``monitor``
and ``window``. A digest is ``{"version": 1, "trigger": "digest", "alerts": [...]}``.

With ``SHIM_WEBHOOK_SECRET`` set, ``X-Shim-Signature: sha256=<hex>`` is the HMAC-SHA256 of the
exact body bytes under that secret; a receiver recomputes it and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from shim.alerts.channels import Channel
from shim.alerts.model import SCHEMA_VERSION, Alert, Digest, Message
from shim.alerts.render.request import HttpRequest
from shim.alerts.summary import link_of

SIGNATURE_HEADER = "X-Shim-Signature"


def render(channel: Channel, message: Message, public_url: str | None,
           secret: str | None) -> HttpRequest:
    request = HttpRequest.json(channel.url, document(message, public_url))
    if secret:
        request.headers[SIGNATURE_HEADER] = signature(request.body, secret)
    return request


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def document(message: Message, public_url: str | None) -> dict[str, Any]:
    if isinstance(message, Digest):
        return {"version": SCHEMA_VERSION, "trigger": "digest",
                "alerts": [_alert(a, public_url) for a in message.alerts]}
    return {"version": SCHEMA_VERSION, **_alert(message, public_url)}


def _alert(alert: Alert, public_url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"trigger": alert.trigger, "project": alert.project_id,
                           "at": alert.at, "alert_id": alert.alert_id or None}
    link = link_of(alert, public_url)
    if alert.bug:
        bug = alert.bug
        out["bug"] = {"number": bug.number, "title": bug.title, "level": bug.level,
                      "component": bug.component, "workspace": bug.workspace,
                      "status": bug.status, "count": bug.occurrence_count,
                      "first_seen": bug.first_seen, "last_seen": bug.last_seen,
                      "error_type": bug.error_type, "error_message": bug.error_message,
                      "top_frame": bug.top_frame, "url": link}
    if alert.event:
        out["event"] = {"id": alert.event.event_id, "environment": alert.event.environment,
                        "release": alert.event.release}
    if alert.monitor:
        monitor = alert.monitor
        out["monitor"] = {"slug": monitor.slug, "environment": monitor.environment,
                          "schedule": monitor.schedule, "reason": monitor.reason,
                          "failures": monitor.failures, "last_check_in": monitor.last_check_in,
                          "next_expected": monitor.next_expected,
                          "bug_number": monitor.bug_number, "url": link}
    if alert.window:
        out["window"] = {"count": alert.window.count, "minutes": alert.window.minutes}
    return out
