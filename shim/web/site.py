"""The web page put together: its routes, the guard every route passes (who is asking, and for a
state change whether it is really this page asking), template rendering, and the error page.

``Site(settings, keys).routes()`` is all ``shim.app`` mounts; without ``SHIM_ADMIN_TOKEN`` there are
none (and the server logs how to turn the page on).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import jinja2
import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from shim.core.auth import Keys
from shim.core.records import Batch, Stored
from shim.settings import Settings
from shim.web import present
from shim.web.access import COOKIE, LoginLimiter, Session, Sessions, origin_allowed
from shim.web.reads import Reads, StoreUnreadable

log = logging.getLogger("shim.web")
T = TypeVar("T")
MAX_FORM_FIELDS = 500


class Lagging(Protocol):
    def lag(self) -> tuple[bool, int]: ...


class ServerWriter(Protocol):
    """What the page uses of the running server's writer (``shim.writer.group.Writer``)."""

    @property
    def journal(self) -> Lagging: ...
    @property
    def store_error(self) -> str | None: ...
    @property
    def log_error(self) -> str | None: ...
    @property
    def transactions(self) -> int: ...

    async def submit(self, batch: Batch) -> list[Stored]: ...
    async def run_in_thread(self, fn: Callable[..., T], *args: object) -> T: ...


class Server(Protocol):
    """What the page uses of the running server (``shim.assembly.State``), which the app's
    lifespan puts in ``app.state.shim``."""

    @property
    def writer(self) -> ServerWriter: ...
    @property
    def store_summary(self) -> dict[str, Any]: ...
    @property
    def started(self) -> float: ...


class WebError(Exception):
    """A page's refusal: its status and what to tell the person (or the script)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def utc_now() -> datetime:
    """The page's clock (a bench over old data sets it back to that data's time)."""
    return datetime.now(UTC)


@dataclass
class Visit:
    """One request that passed the guard: how it proved itself, and its form when it posted one."""

    request: Request
    session: Session | None  # None: a script with the Bearer token
    form: FormData | None = None
    now: datetime = field(default_factory=lambda: utc_now())

    @property
    def server(self) -> Server:
        server: Server = self.request.app.state.shim
        return server

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default


Handler = Callable[["Site", Visit], Awaitable[Response]]


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (never another site's URL: ``//host`` or
    ``/\\host`` would leave it), else ``default``."""
    if (not target or not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(c in target for c in "\r\n")):
        return default
    return target


class Site:
    """One server process's web page: its routes, its read-side store handle, the sessions it
    signs and the login attempts it counts."""

    def __init__(self, settings: Settings, keys: Keys) -> None:
        self.settings = settings
        self.keys = keys
        self.token = settings.admin_token
        self.reads = Reads(settings)
        self.sessions = Sessions(self.token or "", settings.session_key,
                                 settings.session_hours * 3600)
        self.logins = LoginLimiter(settings.login_attempts)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("shim.web", "templates"),
            autoescape=True, trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(ago=present.ago, utc=present.utc_label)
        self.templates.filters["json"] = lambda v: orjson.dumps(
            v, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode()

    def announce(self) -> None:
        """Say in the server log whether the page is on, and how to turn it on."""
        if not self.token:
            log.info("the web page is off; set SHIM_ADMIN_TOKEN (16+ characters) to serve it at /")
            return
        log.info("the web page is on at / (log in with SHIM_ADMIN_TOKEN)")
        if not (self.settings.public_url or "").startswith("https://") and self.settings.host not in (
                "127.0.0.1", "::1", "localhost"):
            log.warning("the web page is served over plain HTTP on %s: put it behind HTTPS before "
                        "it is reachable beyond this machine", self.settings.host)

    def close(self) -> None:
        self.reads.close()

    def routes(self) -> list[BaseRoute]:
        if not self.token:
            return []
        from shim.web import actions, pages  # they import this module: here, not at the top

        def get(path: str, handler: Handler) -> Route:
            return Route(path, self.guarded(handler), methods=["GET", "HEAD"])

        def post(path: str, handler: Handler) -> Route:
            return Route(path, self.guarded(handler), methods=["POST"])

        static = resources.files("shim.web").joinpath("static")
        return [
            Route("/login", self.login_page, methods=["GET", "HEAD"]),
            Route("/login", self.plain(actions.login), methods=["POST"]),
            post("/logout", actions.logout),
            get("/", pages.bugs),
            get("/bugs/{number}", pages.bug),
            get("/bugs/{number}/markdown", pages.bug_markdown),
            get("/bugs/{number}/events/{event_id}.json", pages.event_json),
            post("/bugs/{number}", actions.change_one),
            post("/bugs", actions.change_many),
            get("/logs", pages.logs),
            get("/dashboard", pages.dashboard),
            get("/monitors", pages.monitors),
            get("/settings", pages.settings_page),
            Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
        ]

    # The guard.

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                visit = await self.admit(request)
                return await handler(self, visit)
            except WebError as exc:
                return self.error(request, exc)
            except StoreUnreadable as exc:
                return self.error(request, WebError(503, f"the store cannot be read now ({exc})"))
        return endpoint

    def plain(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A route anyone may call (the login form's POST), with the same error page."""
        async def endpoint(request: Request) -> Response:
            try:
                if not self.same_origin(request):
                    raise WebError(403, "this form was sent from another site")
                return await handler(self, Visit(request, None, await self.read_form(request)))
            except WebError as exc:
                return self.error(request, exc)
        return endpoint

    async def admit(self, request: Request) -> Visit:
        """The visit, if the request may go on: a signed session, or the Bearer token; for a
        POST also this site's Origin and, with a session, the session's CSRF token."""
        bearer = self.sessions.bearer(request.headers.get("authorization"))
        session = None if bearer else self.sessions.read(request.cookies.get(COOKIE))
        if bearer is False:
            raise WebError(401, "wrong token", {"WWW-Authenticate": "Bearer"})
        if session is None and not bearer:
            if request.method in ("GET", "HEAD"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise WebError(303, "log in first",
                               {"Location": f"/login?next={quote(target, safe='')}"})
            raise WebError(403, "log in first: this needs a session (or the Bearer token)")
        visit = Visit(request, session)
        if request.method == "POST":
            if not self.same_origin(request):
                raise WebError(403, "this form was sent from another site")
            visit.form = await self.read_form(request)
            if session is not None and not self.sessions.csrf_matches(
                    visit.field("csrf"), session):
                raise WebError(403, "the form's CSRF token is missing or wrong; reload the page")
        return visit

    def same_origin(self, request: Request) -> bool:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return False
        return origin_allowed(request.headers.get("origin"), request.headers.get("host"),
                              request.url.scheme, self.settings.public_url)

    @staticmethod
    async def read_form(request: Request) -> FormData:
        try:
            return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        except Exception as exc:  # malformed multipart, too many fields: the sender's fault
            raise WebError(400, f"the form could not be read: {exc}") from None

    # Rendering.

    def render(self, visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(template).render(
            now=visit.now, csrf=visit.session.csrf if visit.session else "",
            path=visit.request.url.path, here=_here(visit.request), logged_in=True, **context)
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    async def login_page(self, request: Request) -> Response:
        if self.sessions.read(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse(local_path(request.query_params.get("next")), 303)
        return self.login_form(request, "")

    def login_form(self, request: Request, problem: str, status: int = 200,
                   target: str | None = None) -> Response:
        html = self.templates.get_template("login.html").render(
            problem=problem, next=target or local_path(request.query_params.get("next")),
            logged_in=False, path="/login")
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    def error(self, request: Request, exc: WebError) -> Response:
        if exc.status == 303:
            return RedirectResponse(exc.headers["Location"], 303)
        if "application/json" in request.headers.get("accept", "") or exc.status == 401:
            return Response(orjson.dumps({"detail": exc.detail, "code": f"web_{exc.status}"}),
                            exc.status, headers=exc.headers, media_type="application/json")
        html = self.templates.get_template("error.html").render(
            status=exc.status, detail=exc.detail, logged_in=False, path=request.url.path)
        return HTMLResponse(html, exc.status, headers={**SECURITY_HEADERS, **exc.headers})


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


SECURITY_HEADERS = {
    # No script of ours runs, no other site may frame a page, and nothing is sniffed.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:;"
                               " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
