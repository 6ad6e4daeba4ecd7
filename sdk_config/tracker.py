"""The in-house tracker's API, ``BugTracker().log(...)`` and ``@track_errors(...)``, on top of the
standard SDK, so existing scripts keep working unchanged while they move to plain exceptions.

Each call sends one ordinary Sentry event: the in-house level becomes the Sentry level (critical is
Sentry's ``fatal``), ``component`` and ``workspace_id`` become tags, ``details`` the event's extra
data. Every call gets its own scope, so the tags and extras of one call never reach the next.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import sentry_sdk

from sdk_config._init import ensure_initialized

if TYPE_CHECKING:
    from typing import ParamSpec  # Python 3.10; only the annotations use it

    from sentry_sdk.types import Event, Hint

    P = ParamSpec("P")

Level = Literal["debug", "info", "warning", "error", "critical"]
SentryLevel = Literal["debug", "info", "warning", "error", "fatal"]

SENTRY_LEVELS: dict[str, SentryLevel] = {
    "debug": "debug", "info": "info", "warning": "warning", "warn": "warning", "error": "error",
    "critical": "fatal", "fatal": "fatal",
}

R = TypeVar("R")


def sentry_level(level: str) -> SentryLevel:
    """The Sentry level for an in-house level; an unknown one is reported as ``error`` rather than
    raising inside the ``except`` block that is trying to report something."""
    return SENTRY_LEVELS.get(level.strip().lower(), "error") if isinstance(level, str) else "error"


class BugTracker:
    """The in-house tracker's interface. Creating one initialises the SDK with the defaults of
    ``sdk_config.init`` if the script has not done so."""

    def __init__(self) -> None:
        ensure_initialized()

    def log(self, level: Level, message: str, component: str, error: BaseException | None = None,
            details: Mapping[str, Any] | None = None, workspace_id: str | None = None) -> None:
        """Report ``error`` at ``level`` with ``message``, or, without an error, the message alone.

        ``details`` go to the event's extra data; ``component`` and ``workspace_id`` are tags. With
        shim, ``critical`` opens (or repeats) a bug; the other levels are logged only.
        """
        capture(sentry_level(level), message, component, error, details, workspace_id)


def track_errors(component: str, workspace_id: str | None = None
                 ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function (plain or ``async``) so an exception escaping it is reported as critical
    with the ``component`` and ``workspace_id`` tags, then re-raised unchanged.

    The SDK is set up (with ``sdk_config.init``'s defaults) at the first report if the script has
    not done it: decorating, at import time, does nothing.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        details = {"function": func.__qualname__}
        if inspect.iscoroutinefunction(func):
            coroutine_function = cast("Callable[P, Awaitable[Any]]", func)

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                try:
                    return await coroutine_function(*args, **kwargs)
                except Exception as error:
                    capture("fatal", "", component, error, details, workspace_id)
                    raise

            return cast("Callable[P, R]", run_async)

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except Exception as error:
                capture("fatal", "", component, error, details, workspace_id)
                raise

        return run

    return decorate


def capture(level: SentryLevel, message: str, component: str, error: BaseException | None,
            details: Mapping[str, Any] | None, workspace_id: str | None) -> None:
    """Send one event in a scope of its own (setting the SDK up first if nothing did).

    Only the SDK's public capture calls are used: the exception's event is built by the installed
    SDK, whichever major. When the exception escapes to the top of the script afterwards, the
    SDK's dedupe drops the second report of the same exception object, so it is one event.
    """
    ensure_initialized()
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_level(level)
        if component:
            scope.set_tag("component", component)
        if workspace_id:
            scope.set_tag("workspace_id", workspace_id)
        for key, value in (details or {}).items():
            scope.set_extra(str(key), value)
        if error is None:
            scope.capture_message(message, level=level)
            return
        if message:
            scope.add_event_processor(_with_message(message))
        scope.capture_exception(error)


def _with_message(message: str) -> Callable[[Event, Hint], Event]:
    """An event processor giving the exception's event the caller's message as well."""

    def add(event: Event, hint: Hint) -> Event:
        event["logentry"] = {"message": message, "formatted": message}
        return event

    return add
