"""shim: a small Sentry-compatible error ingestion server.

Scripts keep calling ``sentry_sdk.init(dsn=...)``; the DSN points here. Envelopes become rows of
``error_logs``, and the serious ones are grouped by fingerprint into ``bugs``.
"""

__version__ = "0.1.0"
