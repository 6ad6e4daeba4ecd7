"""Storage checks that report a message (with the stack attached when configured)."""

import sentry_sdk


def check_disk(percent: int) -> None:
    sentry_sdk.capture_message(f"disk {percent}% full on /var/scans")


def check_quota(used: int) -> None:
    sentry_sdk.capture_message(f"quota {used} MB used")
