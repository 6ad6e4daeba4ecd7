"""Alerts: where messages go (channels), what they say (the alert model and one renderer per
kind of channel), and delivering one message with a classified outcome.

- ``channels``: a channel URL (``SHIM_NOTIFY``) parsed and validated into a ``Channel`` with its
  filters and a masked form for display. Pure.
- ``model``: ``Alert`` (a trigger with the bug's, event's or monitor's facts) and ``Digest``
  (several alerts in one message). Pure.
- ``summary``, ``text`` and ``render``: the message for each kind (Slack, Discord, Teams,
  Telegram, e-mail, our webhook JSON), escaped for its format and kept within its service's
  documented limits. Pure.
- ``outcome`` and ``retry``: what a receiver's answer means (delivered, retry after N seconds,
  failed for good) and when to try again (exponential backoff with jitter, honouring the
  receiver's wait, giving up after 24 hours). Pure.
- ``send``: ``Sender.deliver(channel, alert)``, one attempt over ``httpx`` or ``aiosmtplib``.

Wiring (for the outbox and the sender task): build ``Alert`` values where the writer decides a bug
is new, regressed or too frequent, or where a monitor changes state; pick the channels whose
``filters.matches(alert)``; store each (channel name, ``Alert.as_json()``) in the outbox; the
sender task reads due rows, calls ``Sender.deliver`` (several pending alerts of one channel as one
``Digest``), and stores ``retry.next_attempt(...)`` or the failure.

May import: ``shim.core`` and the standard library; ``send`` also ``httpx`` and ``aiosmtplib``.
Never the store, the writer, the app or the CLI.
"""
