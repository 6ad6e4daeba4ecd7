"""``init``: the one ``sentry_sdk.init`` every scanner script shares.

It owns the defaults (DSN, environment and release from the SDK's own ``SENTRY_*`` variables, the
``component`` / ``workspace_id`` tags, logging levels, no PII, a bounded shutdown), the opt-in to
Sentry Logs, and the two guarantees a script relies on: no DSN is a warning and not an error, and a
server that is down or slow never changes what the script prints, how long it takes beyond the
shutdown bound, or how it exits.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.utils import BadDsn

SHUTDOWN_TIMEOUT = 2.0
"""Seconds the SDK may spend at exit sending what is still queued; then the script exits anyway."""

SEND_LOGS_VARIABLE = "SHIM_SEND_LOGS"
_TRUTHY = frozenset({"1", "true", "yes", "on"})

# urllib3 logs a warning per retry when the server refuses connections; a script that configures
# logging would print them. Records logged on the SDK's own transport thread are dropped; the
# script's own HTTP calls (other threads) keep their warnings.
_SDK_THREAD_PREFIX = "sentry-sdk."
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
                    "urllib3.util.retry", "urllib3.response")

log = logging.getLogger("sdk_config")

_attempted = False
_warned = False


def init(component: str, workspace_id: str | None = None, *, send_logs: bool | None = None,
         **overrides: Any) -> bool:
    """Set up ``sentry_sdk`` for ``component``; True when events will be sent.

    The DSN comes from ``SENTRY_DSN``, environment and release from ``SENTRY_ENVIRONMENT`` and
    ``SENTRY_RELEASE``. Every event is tagged ``component`` (and ``workspace_id`` when given);
    ``logging.error`` becomes an error event, ``logging.critical`` a fatal (critical) one, lower
    levels breadcrumbs. ``send_logs=True`` or ``SHIM_SEND_LOGS=1`` also sends every record at INFO
    and above as a Sentry Log. Any keyword argument of ``sentry_sdk.init`` overrides these
    defaults; ``integrations`` are added to ours, and one of the same kind replaces ours.

    Without a DSN (or with an invalid one) nothing is initialised and one warning is logged: the
    script runs exactly as it would without reporting.
    """
    global _attempted
    _attempted = True
    options = sdk_options(send_logs, overrides, os.environ)
    if options is None:
        _warn_once("SENTRY_DSN is not set: errors of %s are not reported (sdk_config)",
                   component or "this script")
        return False
    try:
        sentry_sdk.init(**options)
    except BadDsn as error:
        _warn_once("SENTRY_DSN is not a valid DSN (%s): errors of %s are not reported "
                   "(sdk_config)", error, component or "this script")
        return False
    _quiet_transport_logs()
    scope = sentry_sdk.get_global_scope()
    # Tags for events; the same values as attributes for Sentry Logs, which do not carry tags.
    for key, value in (("component", component), ("workspace_id", workspace_id)):
        if value:
            scope.set_tag(key, value)
            scope.set_attribute(key, value)
        else:  # a second init must not keep the first one's values
            scope.remove_tag(key)
            scope.remove_attribute(key)
    return True


def ensure_initialized() -> None:
    """Initialise with the defaults (no component tag) unless ``init`` already ran or the SDK was
    set up directly: scripts that only use the in-house API still report, given ``SENTRY_DSN``."""
    if not _attempted and not sentry_sdk.is_initialized():
        init("")


def sdk_options(send_logs: bool | None, overrides: Mapping[str, Any],
                environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The keyword arguments for ``sentry_sdk.init``, or None when there is no DSN to send to."""
    options = dict(overrides)
    dsn = options.pop("dsn", environ.get("SENTRY_DSN"))
    if not dsn:
        return None
    if send_logs is None:
        send_logs = environ.get(SEND_LOGS_VARIABLE, "").strip().lower() in _TRUTHY
    integrations = list(options.pop("integrations", None) or ())
    return {
        "dsn": dsn,
        "environment": environ.get("SENTRY_ENVIRONMENT") or None,  # None: the SDK's default
        "release": environ.get("SENTRY_RELEASE") or None,
        "server_name": socket.gethostname() or None,
        "send_default_pii": False,
        "shutdown_timeout": SHUTDOWN_TIMEOUT,
        "enable_logs": send_logs,
        **options,
        "integrations": _integrations(integrations),
    }


def _integrations(caller: list[Integration]) -> list[Integration]:
    """Ours, then the caller's; the SDK keeps the last of each kind, so the caller's win."""
    kinds = {integration.identifier for integration in caller}
    ours: list[Integration] = []
    # Built only when used: LoggingIntegration() sets class-wide state the caller's may have set.
    if LoggingIntegration.identifier not in kinds:
        ours.append(LoggingIntegration(level=logging.INFO, event_level=logging.ERROR,
                                       sentry_logs_level=logging.INFO))
    if AtexitIntegration.identifier not in kinds:
        ours.append(AtexitIntegration(callback=_silent_shutdown))
    return ours + caller


def _warn_once(message: str, *args: object) -> None:
    """One warning per process, though a module-level ``BugTracker()`` may set the SDK up before
    the script's own ``init`` call does it again."""
    global _warned
    if not _warned:
        _warned = True
        log.warning(message, *args)


def _silent_shutdown(pending: int, timeout: float) -> None:
    """At exit the SDK's default prints three lines to stderr whenever its queue takes more than a
    tenth of a second to drain (a slow or dead server); the wait stays bounded, the output clean."""


def _not_from_transport(record: logging.LogRecord) -> bool:
    """Keep the record unless the SDK's transport logged it."""
    return not (record.threadName or "").startswith(_SDK_THREAD_PREFIX)


def _quiet_transport_logs() -> None:
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _not_from_transport not in logger.filters:
            logger.addFilter(_not_from_transport)
