"""The pure core: from bytes and dicts to the records the writer stores.

Owns the envelope grammar (``envelope``), body decoding under caps (``body``), reading and
normalising an event (``event``, ``projection``), turning an envelope's items into a ``Batch``
(``items``), scrubbing secrets (``scrub``), stack-trace text (``stacktrace``), grouping
(``grouping``), levels, severities, priorities and statuses (``levels``), the bug policy
(``policy``), trimming oversized events (``trim``), the storm guard (``storm``), DSN keys as given
(``auth``), the error hierarchy (``errors``) and the records themselves (``records``).

May import: the standard library, its parsing libraries (orjson, msgspec, brotli, zstandard,
isal, re2) and other ``shim.core`` modules. Never Starlette, a database, the filesystem, the
writer, the stores, the CLI or the app (``tests/test_layers.py`` holds this). A clock, where one is
needed, is a parameter.
"""
