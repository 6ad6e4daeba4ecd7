"""The web page: server-rendered pages to triage bugs, read events and watch the fleet, served by
``shim serve`` on its own port at ``/`` when ``SHIM_ADMIN_TOKEN`` is set.

Owns its routes (``site``), access (``access``: login, sessions, CSRF, Origin), its read-side store
handle (``reads``), the pages and the actions, the charts drawn as SVG, the templates and the one
stylesheet. An edge like the app: it may import the core, the store's reads and protocol, the
settings and the monitors' pure judgement (``shim.monitors``), never the writer, the assembly, the
app or the CLI; it changes bugs only through the running server's writer, which the app hands it
(``app.state.shim``, seen through ``site.Server``).
"""

from shim.web.site import Site

__all__ = ["Site"]
