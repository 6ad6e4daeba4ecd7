"""The writer: everything between a finished ``Batch`` and the disk.

Owns group commit on the event loop (``group``), the journal that appends a batch to the backup
log and then commits it to the store (``journal``; in a child process of its own with SQLite,
``process``), the backup log's day files and applied-position marker (``log``), what a commit
leaves out because the store holds it already (``held``), restore from the log (``restore``), and
the bugs snapshot and its exporter process (``snapshot``, ``exporter``).

May import: ``shim.core``, ``shim.store`` (through its protocol), ``shim.settings`` and the
standard library. Never the app, the CLI or Starlette.
"""
