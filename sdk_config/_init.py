"""``init``: the one ``sentry_sdk.init`` every scanner script shares.

It owns the two guarantees a script relies on: no DSN (or options the installed SDK does not know)
is a warning and not an error, and a server that is down or slow never changes what the script
prints, how long it takes beyond the shutdown bound, or how it exits. The options themselves, for
either sentry-sdk major, come from ``_options``; the ``component`` / ``workspace_id`` tags from
``_tags``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import sentry_sdk
from sentry_sdk.utils import BadDsn

from sdk_config._options import sdk_options, unknown_options
from sdk_config._tags import set_tags

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
    if unknown := unknown_options(options):
        # Options of the other major (or misspelt ones) would make sentry_sdk.init raise.
        log.warning("sentry-sdk %s has no option %s: ignored (sdk_config)", sentry_sdk.VERSION,
                    ", ".join(unknown))
        for name in unknown:
            del options[name]
    try:
        sentry_sdk.init(**options)
    except BadDsn as error:
        _warn_once("SENTRY_DSN is not a valid DSN (%s): errors of %s are not reported "
                   "(sdk_config)", error, component or "this script")
        return False
    _quiet_transport_logs()
    set_tags(component, workspace_id)  # a second init must not keep the first one's values
    return True


def ensure_initialized() -> None:
    """Initialise with the defaults (no component tag) unless ``init`` already ran or the SDK was
    set up directly: scripts that only use the in-house API still report, given ``SENTRY_DSN``."""
    if not _attempted and not sentry_sdk.is_initialized():
        init("")


def _warn_once(message: str, *args: object) -> None:
    """One warning per process, though a module-level ``BugTracker()`` may set the SDK up before
    the script's own ``init`` call does it again."""
    global _warned
    if not _warned:
        _warned = True
        log.warning(message, *args)


def _not_from_transport(record: logging.LogRecord) -> bool:
    """Keep the record unless the SDK's transport logged it."""
    return not (record.threadName or "").startswith(_SDK_THREAD_PREFIX)


def _quiet_transport_logs() -> None:
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _not_from_transport not in logger.filters:
            logger.addFilter(_not_from_transport)
