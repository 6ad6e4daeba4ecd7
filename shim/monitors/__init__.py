"""Cron monitors, the pure part: a monitor's schedule from a check-in's ``monitor_config``
(``schedule``), and what its check-ins and the passing of time mean (``evaluate``): missed runs,
runs past their ``max_runtime``, and when a monitor starts failing or recovers.

Nothing here reads a clock: every function is given the time it is about (the time the server
has caught up to, for ``evaluate``), so a server that was behind or down raises no false
"missed" alarm and tests step through days, DST nights included, in a moment.

Wiring (for the integrator): keep one ``MonitorState`` per (project, slug, environment), created
with ``new_monitor`` from the first check-in's ``monitor_config`` (``parse_monitor_config``)
and updated with ``update_config`` when a later one sends another (kept in a table with
``MonitorState.as_json`` / ``state_from_json``); feed every stored check-in
to ``record_check_in`` and, as the caught-up time advances, call ``evaluate(state, now,
listening_since)``. Their ``Finding`` values say what to store and send: ``missed`` (a missed
check-in row), ``timeout`` (the in-progress row becomes ``timeout``), ``failing`` (open the bug
``bug_title`` names, component = slug, and alert ``monitor_failing``/``monitor_missed``/
``monitor_timeout``), ``recovered`` (resolve it, alert ``monitor_recovered``).

May import: ``shim.core``, the standard library and ``cronsim``. Never the store, the writer,
the app or the CLI.
"""
