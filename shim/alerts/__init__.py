"""Alerts: where messages go (channels), what they say (the alert model and one renderer per
kind of channel), and delivering one message with a classified outcome.

- ``channels``: a channel URL (``SHIM_NOTIFY``) parsed and validated into a ``Channel`` with its
  filters and a masked form for display. Pure.
- ``model``: ``Alert`` (a trigger with the bug's, event's or monitor's facts) and ``Digest``
  (several alerts in one message). Pure.
- ``summary``, ``text`` and ``render``: the message for each kind (Slack, Discord, Teams,
  Telegram, e-mail, our webhook JSON), escaped for its format and kept within its service's
  documented limits. Pure.
- ``routing``: which channels an alert goes to (their filters) and a channel's pending alerts
  as one message or digests; ``facts``: an alert's ``BugFacts`` from a ``bugs`` row and the top
  in-app frame of its stack trace. Pure.
- ``outcome`` and ``retry``: what a receiver's answer means (delivered, retry after N seconds,
  failed for good) and when to try again (exponential backoff with jitter, honouring the
  receiver's wait, giving up after 24 hours). Pure.
- ``send``: ``Sender.deliver(channel, alert)``, one attempt over ``httpx`` or ``aiosmtplib``.

Wiring (for the outbox and the sender task): build ``Alert`` values (``facts.bug_facts``) where the
writer decides a bug is new, regressed or too frequent, or where a monitor changes state; store
one outbox row per (``routing.channels_for(alert, settings.notify)``, ``Alert.as_json()``); the
sender task, at most once per channel every ``routing.DIGEST_INTERVAL`` seconds, claims that
channel's due rows, sends ``routing.compose(pending)`` with ``Sender.deliver`` (one shared
``httpx.AsyncClient``), and stores ``retry.next_attempt(outcome, attempts, first, now)`` or, when
that is ``None`` and the outcome is not delivered, the failure (``outcome.detail``, already
redacted; a ``failed`` outcome marks the channel failing).

May import: ``shim.core`` and the standard library; ``send`` also ``httpx`` and ``aiosmtplib``.
Never the store, the writer, the app or the CLI.
"""
