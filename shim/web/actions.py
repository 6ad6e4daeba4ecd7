"""What the page changes: logging in and out, and a bug's status or assignee.

A change goes through the running server's writer as ``Batch(status_changes=[...])``, so the
backup log records it before the store applies it, exactly like ``shim resolve`` (and ``shim
restore`` replays it). Every one is a POST that passed the guard (``Site.admit``): a session with
its CSRF token, or the Bearer token, and this site's Origin.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from starlette.responses import RedirectResponse, Response

from shim.core.records import Batch, StatusChange
from shim.store import Store, StoreUnavailable
from shim.web.access import COOKIE
from shim.web.pages import bug_number
from shim.web.site import Site, Visit, WebError, local_path

log = logging.getLogger("shim.web")

STATUS_OF = {"resolve": "resolved", "reopen": "open", "close": "closed", "start": "in_progress"}
MAX_ASSIGNEE = 100
MAX_BUGS = 200


def _client(visit: Visit) -> str:
    client = visit.request.client
    return client.host if client else "unknown"


async def login(site: Site, visit: Visit) -> Response:
    request = visit.request
    target = local_path(visit.field("next"))
    address = _client(visit)
    wait = site.logins.retry_after(address)
    if wait:
        response = site.login_form(request, f"Too many failed attempts; try again in {wait} s.",
                                   429, target)
        response.headers["Retry-After"] = str(wait)
        return response
    if not site.sessions.token_matches(visit.field("token")):
        site.logins.failed(address)
        log.warning("failed web page login from %s", address)
        return site.login_form(request, "That is not the admin token.", 403, target)
    cookie, _ = site.sessions.issue()
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, cookie, max_age=int(site.sessions.lifetime), path="/",
                        httponly=True, samesite="lax", secure=_secure(site, visit))
    log.info("web page login from %s", address)
    return response


def _secure(site: Site, visit: Visit) -> bool:
    """Whether the browser reached us over HTTPS (directly, through a proxy that says so, or as
    ``SHIM_PUBLIC_URL`` says): then the cookie is only ever sent back over HTTPS."""
    request = visit.request
    return (request.url.scheme == "https"
            or request.headers.get("x-forwarded-proto", "").lower() == "https"
            or (site.settings.public_url or "").startswith("https://"))


async def logout(site: Site, visit: Visit) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax",
                           secure=_secure(site, visit))
    return response


def _change(visit: Visit) -> tuple[str | None, str | None]:
    """The form's (status, assignee) change."""
    action = visit.field("action")
    if action in STATUS_OF:
        return STATUS_OF[action], None
    if action == "assign":
        assignee = visit.field("assignee")
        if len(assignee) > MAX_ASSIGNEE:
            raise WebError(400, f"an assignee is at most {MAX_ASSIGNEE} characters")
        return None, assignee
    raise WebError(400, f"action must be one of {', '.join([*STATUS_OF, 'assign'])}")


async def _apply(site: Site, visit: Visit, numbers: list[str]) -> None:
    status, assignee = _change(visit)

    def missing(store: Store) -> list[str]:
        return [n for n in numbers if store.get_bug(n) is None]

    unknown = await site.reads(missing)
    if unknown:
        raise WebError(404, f"no such bug: {', '.join(unknown)}")
    at = visit.now.isoformat(timespec="microseconds")
    changes = [StatusChange(change_id=uuid.uuid4().hex, bug_number=n, status=status,
                            assignee=assignee, at=at, by="web") for n in numbers]
    try:
        await visit.server.writer.submit(Batch(status_changes=changes, received_at=at))
    except StoreUnavailable as exc:
        raise WebError(503, f"the change could not be kept ({exc}); try again") from None
    what: Any = f"status {status}" if status else f"assignee {assignee or '(none)'}"
    log.info("web page: %s set %s", ", ".join(numbers), what)


async def change_one(site: Site, visit: Visit) -> Response:
    number = bug_number(visit.request.path_params["number"])
    await _apply(site, visit, [number])
    return RedirectResponse(local_path(visit.field("next"), f"/bugs/{number}"), 303)


async def change_many(site: Site, visit: Visit) -> Response:
    assert visit.form is not None
    picked = [v for v in visit.form.getlist("bug") if isinstance(v, str)]
    if not picked:
        raise WebError(400, "no bug selected: tick the bugs to change first")
    if len(picked) > MAX_BUGS:
        raise WebError(400, f"at most {MAX_BUGS} bugs at once")
    numbers = list(dict.fromkeys(bug_number(n) for n in picked))
    await _apply(site, visit, numbers)
    return RedirectResponse(local_path(visit.field("next"), "/"), 303)
