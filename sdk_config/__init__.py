"""sdk_config: one call that sets up ``sentry_sdk`` the same way in every scanner script.

``init(component)`` reads the standard ``SENTRY_*`` variables, tags every event with the component
(and workspace), turns ``logging.error`` / ``logging.critical`` into events and keeps a dead server
from ever slowing or cluttering the script. ``BugTracker`` and ``track_errors`` keep the in-house
tracker's API working on top of it, so old scripts move over one call at a time.

It runs on sentry-sdk 2.x (from 2.40) and 3.x alike: a script sends the same events, and shim
stores the same rows, on either major (``_options`` owns what differs between them).

Nothing here is specific to shim: the same DSN variable pointed at hosted Sentry is the whole
migration. It is its own distribution and needs only ``sentry-sdk`` at runtime: copy this directory
to the scanner machine and ``pip install ./sdk_config``; never the ``shim`` server package.
"""

from __future__ import annotations

from sdk_config._init import init
from sdk_config.tracker import BugTracker, Level, track_errors

__all__ = ["BugTracker", "Level", "init", "track_errors"]
