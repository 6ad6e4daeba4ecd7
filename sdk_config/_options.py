"""The keyword arguments for ``sentry_sdk.init`` on whichever sentry-sdk major is installed.

Callers of ``sdk_config.init`` speak one language, 2.x's: ``send_default_pii``, ``enable_logs``,
``include_local_variables`` and the rest. 3.x renamed or removed several of these and changed
defaults a scanner notices (stdlib logging sends nothing, message events carry the calling thread's
stack with its locals, unraisable exceptions become events). This module turns the caller's options into
what the installed SDK accepts, with the behaviour the scripts had on 2.x. It reads the SDK's
version and option names but sends nothing; ``_init`` does that.
"""

from __future__ import annotations

import copy
import logging
import socket
from collections.abc import Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from sdk_config._tags import SCOPE_ATTRIBUTES, tagged_logs

SDK_MAJOR = int(sentry_sdk.VERSION.split(".", 1)[0])
"""The major version of the installed sentry-sdk: 2 or 3."""

SHUTDOWN_TIMEOUT = 2.0
"""Seconds the SDK may spend at exit sending what is still queued; then the script exits anyway."""

SEND_LOGS_VARIABLE = "SHIM_SEND_LOGS"
_TRUTHY = frozenset({"1", "true", "yes", "on"})

# Request headers that name the client machine or user behind a proxy: 2.x drops them from events
# unless send_default_pii is on; 3.x's own list of sensitive headers leaves them in.
_ADDRESS_HEADER_TERMS = ["forwarded", "real-ip", "client-ip", "connecting-ip", "remote-", "via",
                         "-user"]

NO_PII: dict[str, Any] = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "denylist", "terms": _ADDRESS_HEADER_TERMS}},
    "url_query_params": {"mode": "denylist", "terms": _ADDRESS_HEADER_TERMS},
    "graphql": {"document": False, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "mcp": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "queues": False,
}
"""3.x's ``data_collection`` for what 2.x collects with ``send_default_pii`` off (its default):
no user identity or address, no cookies, no query text or AI prompts; local variables and source
lines in stack traces stay, as on 2.x."""


def sdk_options(send_logs: bool | None, overrides: Mapping[str, Any],
                environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The keyword arguments for the installed ``sentry_sdk.init``, or None without a DSN.

    ``overrides`` are the caller's ``sentry_sdk.init`` keywords, in 2.x's terms or the installed
    major's; they win over our defaults. Options the installed SDK does not know are passed on
    (see ``unknown_options``).
    """
    options = dict(overrides)
    dsn = options.pop("dsn", environ.get("SENTRY_DSN"))
    if not dsn:
        return None
    send_logs = wants_logs(send_logs, options, environ)
    options.pop("enable_logs", None)
    integrations = list(options.pop("integrations", None) or ())
    defaults: dict[str, Any] = {
        "dsn": dsn,
        "environment": environ.get("SENTRY_ENVIRONMENT") or None,  # None: the SDK's default
        "release": environ.get("SENTRY_RELEASE") or None,
        "server_name": socket.gethostname() or None,
        "shutdown_timeout": SHUTDOWN_TIMEOUT,
        # A message event (BugTracker.log without an error) carries no stack: 3.x's default
        # attaches every frame of the calling thread, with its local variables.
        "attach_stacktrace": False,
    }
    if SDK_MAJOR >= 3:
        _translate_to_3(options, defaults, integrations)
    else:
        defaults["enable_logs"] = send_logs  # 2.x's default already sends no PII
    if not SCOPE_ATTRIBUTES:  # 2.40-2.48: the logs' component comes from a hook
        defaults["before_send_log"] = tagged_logs(
            options.pop("before_send_log", None),
            send_pii=options.get("send_default_pii") is True)
    return {**defaults, **options,
            "integrations": _integrations(integrations, send_logs=send_logs)}


def wants_logs(send_logs: bool | None, overrides: Mapping[str, Any],
               environ: Mapping[str, str]) -> bool:
    """Whether stdlib logging records also go out as Sentry Logs: 2.x's ``enable_logs`` among the
    caller's options decides first (any option overrides our defaults), then ``send_logs``, then
    ``SHIM_SEND_LOGS``."""
    if "enable_logs" in overrides:
        return bool(overrides["enable_logs"])
    if send_logs is not None:
        return send_logs
    return environ.get(SEND_LOGS_VARIABLE, "").strip().lower() in _TRUTHY


def unknown_options(options: Mapping[str, Any]) -> list[str]:
    """The names in ``options`` the installed ``sentry_sdk.init`` would refuse."""
    return sorted(name for name in options if name not in DEFAULT_OPTIONS)


def _translate_to_3(options: dict[str, Any], defaults: dict[str, Any],
                    integrations: list[Integration]) -> None:
    """2.x's privacy and stack options as 3.x's ``data_collection``, and 3.x's extra default
    integration switched off (in place)."""
    collection = copy.deepcopy(NO_PII)  # the SDK may keep it: never share ours
    if options.pop("send_default_pii", False):
        collection = {}  # 3.x collects everything by default, as 2.x's send_default_pii=True
    if options.pop("include_local_variables", True) is False:
        collection["stack_frame_variables"] = False
    if options.pop("include_source_context", True) is False:
        collection["frame_context_lines"] = 0
    defaults["data_collection"] = collection  # one the caller gives replaces it whole
    # 3.x reports exceptions raised in __del__ and other unraisable places, which 2.x only
    # printed; as events they would open bugs 2.x never did. A caller's own instance keeps it.
    if all(integration.identifier != "unraisablehook" for integration in integrations):
        from sentry_sdk.integrations.unraisablehook import UnraisablehookIntegration

        disabled = list(options.pop("disabled_integrations", None) or ())
        defaults["disabled_integrations"] = [*disabled, UnraisablehookIntegration]


def _integrations(caller: list[Integration], *, send_logs: bool) -> list[Integration]:
    """Ours, then the caller's; the SDK keeps the last of each kind, so the caller's win."""
    kinds = {integration.identifier for integration in caller}
    ours: list[Integration] = []
    # Built only when used: on 2.x LoggingIntegration() sets class-wide state the caller's may
    # have set.
    if LoggingIntegration.identifier not in kinds:
        ours.append(logging_integration(send_logs))
    if AtexitIntegration.identifier not in kinds:
        ours.append(AtexitIntegration(callback=_silent_shutdown))
    return ours + caller


def logging_integration(send_logs: bool) -> LoggingIntegration:
    """``logging.error`` an error event, ``logging.critical`` a fatal one, INFO and above a
    breadcrumb, and, with ``send_logs``, INFO and above a Sentry Log, on either major.

    The majors name the same thresholds differently: 2.x's ``level`` is the breadcrumbs' and
    ``enable_logs`` gates its ``sentry_logs_level``; 3.x's ``level`` is the Sentry Logs' (None:
    none) and its ``event_level`` defaults to None, so ``logging.error`` sends nothing there.
    """
    levels: dict[str, int | None]
    if SDK_MAJOR >= 3:
        levels = {"level": logging.INFO if send_logs else None, "event_level": logging.ERROR,
                  "breadcrumb_level": logging.INFO}
    else:
        levels = {"level": logging.INFO, "event_level": logging.ERROR,
                  "sentry_logs_level": logging.INFO}
    return LoggingIntegration(**levels)


def _silent_shutdown(pending: int, timeout: float) -> None:
    """At exit the SDK's default prints three lines to stderr whenever its queue takes more than a
    tenth of a second to drain (a slow or dead server); the wait stays bounded, the output clean."""
