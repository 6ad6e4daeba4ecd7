"""Library code that fails on its own, and reports it itself (no frame of the app involved)."""

from collections.abc import Callable

import sentry_sdk


def guarded(action: Callable[..., None], *args: object) -> None:
    try:
        action(*args)
    except OSError:
        sentry_sdk.capture_exception()


def send(payload: bytes) -> None:
    raise OSError(f"connection reset after {len(payload)} bytes")


def retry(payload: bytes) -> None:
    send(payload)


def connect(port: int) -> None:
    raise OSError(f"connection refused on port {port}")
