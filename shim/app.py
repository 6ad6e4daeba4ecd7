"""The HTTP edge: routes, CORS, auth, and the one place errors become JSON responses.

Routes read the body under caps, call the pure core, hand the result to the writer and answer once
it is committed. They never open a database connection; the store and writer live in the app state
built by the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from shim import __version__
from shim.assembly import State, running, update_gauges
from shim.core.auth import Keys, key_from_dsn, request_key
from shim.core.body import legacy_store_json, read_body
from shim.core.envelope import parse_envelope
from shim.core.errors import (
    BadRequest,
    ItemsRejected,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    ShimError,
    Unauthorized,
)
from shim.core.event import isoformat_utc
from shim.core.items import Ingested, http_check_in, ingest_envelope, ingest_store
from shim.core.records import Batch
from shim.metrics import CONTENT_TYPE, Metrics
from shim.refusals import STATUSES as REFUSALS
from shim.settings import Settings
from shim.store import Store, StoreUnavailable
from shim.web import Site

log = logging.getLogger("shim")
REFUSED_KEY = "shim.key"  # the scope's note of a key read from the envelope header
_INGEST_PATHS = ("/envelope/", "/store/")  # the requests /metrics times and counts


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _state(request: Request) -> State:
    state: State = request.app.state.shim
    return state


def _query(request: Request) -> Mapping[str, str]:
    """The query's parameters; not parsed when there is no query (SDKs send none)."""
    return request.query_params if request.scope.get("query_string") else {}


def _project_id(project: str) -> str:
    project_id = str(project)
    if not (project_id.isascii() and project_id.isdigit()) or len(project_id) > 18:
        raise BadRequest(f"project id {project_id[:32]!r} must be a number")
    return project_id


async def _body(request: Request, settings: Settings) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isascii() and length.isdigit() and int(length) > settings.max_body_bytes:
        raise PayloadTooLarge(f"body is larger than {settings.max_body_bytes} bytes",
                              limit=settings.max_body_bytes)
    try:
        async with asyncio.timeout(settings.read_timeout):
            return await read_body(request.stream(), request.headers.get("content-encoding"),
                                   settings.max_body_bytes, settings.max_decoded_bytes)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {settings.read_timeout:g} s") from None


async def _commit(state: State, batch: Batch, key: str) -> None:
    if batch.is_empty():
        return
    state.limiter.take(key, len(batch.error_logs))  # raises RateLimited: nothing is stored
    slimmed = state.storm.slimmed
    if batch.error_logs:  # (the request's own list: replacing it in place copies nothing)
        batch.error_logs[:] = state.storm.admit(batch.error_logs)
    try:
        stored = await state.writer.submit(batch)
    except StoreUnavailable as exc:
        raise ServiceUnavailable(f"{exc}; retry later", retry_after=10) from None
    if state.metrics is not None:
        state.metrics.committed(batch, stored)
        if state.storm.slimmed > slimmed:
            state.metrics.events_slimmed.inc(state.storm.slimmed - slimmed)
    state.items.update(batch.item_counts)
    for one in stored:
        if one.duplicate:
            state.duplicates += 1
        else:
            state.stored += 1


def _trimmed(state: State, count: int) -> None:
    if count:
        state.trimmed += count
        if state.metrics is not None:
            state.metrics.events_trimmed.inc(count)


def _answer(ingested: Ingested) -> dict[str, Any]:
    """The 200 answer's body; ``ItemsRejected`` when an item was skipped."""
    body = {"id": ingested.event_id} if ingested.event_id else {}
    if ingested.problems:
        first = ingested.problems[0]
        raise ItemsRejected(
            f"item {first['item']} ({first['type'] or 'unknown'}): {first['detail']}",
            status=ingested.status,
            skipped=ingested.problems,
            **body,
        )
    return body


async def _envelope(state: State, project: str, request: Request) -> dict[str, Any]:
    """``POST /api/{project}/envelope/``, from either door (``Edge`` or the Starlette route)."""
    project_id = _project_id(project)
    key = request_key(request.headers, _query(request))
    if key:
        state.keys.check(key, project_id)  # before reading a byte of the body
    data = await _body(request, state.settings)
    envelope = parse_envelope(data)
    if not key:
        key = key_from_dsn(envelope.headers.get("dsn"))
        request.scope[REFUSED_KEY] = key  # for the refusal's warning (``_error``)
        state.keys.check(key, project_id)
    assert key is not None  # check() refused a missing key
    if len(data) > state.settings.max_event_bytes:  # trimming an event takes a while: not
        ingested = await asyncio.to_thread(  # on the loop, which other requests wait for
            ingest_envelope, envelope, project_id, datetime.now(UTC), state.limits)
    else:
        ingested = ingest_envelope(envelope, project_id, datetime.now(UTC), state.limits)
    await _commit(state, ingested.batch, key)
    _trimmed(state, ingested.trimmed)
    if state.forwarder is not None:  # stored here first; the upstream never delays the answer
        state.forwarder.offer(project_id, envelope)
    return _answer(ingested)


async def envelope_endpoint(request: Request) -> Response:
    return JSON(await _envelope(_state(request), request.path_params["project_id"], request))


async def store_endpoint(request: Request) -> Response:
    state = _state(request)
    project_id = _project_id(request.path_params["project_id"])
    key = request_key(request.headers, _query(request))
    state.keys.check(key, project_id)
    assert key is not None  # check() refused a missing key
    data = await _body(request, state.settings)
    event = legacy_store_json(data)
    # What goes upstream is the event as sent (trimming an oversized one cuts it in place).
    upstream_json = orjson.dumps(event) if state.forwarder is not None else b""

    def ingest() -> Ingested:  # an event over SHIM_MAX_EVENT_BYTES is trimmed, not refused
        return ingest_store(event, project_id, datetime.now(UTC), state.limits, size=len(data))

    oversized = len(data) > state.settings.max_event_bytes  # then off the loop, as envelopes
    ingested = await asyncio.to_thread(ingest) if oversized else ingest()
    await _commit(state, ingested.batch, key)
    _trimmed(state, ingested.trimmed)
    if state.forwarder is not None:
        state.forwarder.offer_store(project_id, upstream_json)
    return JSON(_answer(ingested))


async def cron_endpoint(request: Request) -> Response:
    """``GET|POST /api/{project}/cron/{slug}/{key}/?status=...``: a check-in from a script
    without an SDK (Sentry's HTTP check-ins), stored like an SDK's ``check_in`` item. The fields
    come from the query, or from a JSON object body (the query wins). Answers 202 with the
    check-in's id, which a later ``?check_in_id=`` can name to finish the same run."""
    state = _state(request)
    project_id = _project_id(request.path_params["project_id"])
    key = request.path_params["key"]
    request.scope[REFUSED_KEY] = key  # for the refusal's warning (``_error``)
    state.keys.check(key, project_id)
    fields: dict[str, Any] = {}
    if request.method == "POST":
        data = await _body(request, state.settings)
        if len(data) > state.settings.max_event_bytes:
            raise PayloadTooLarge(f"a check-in is at most {state.settings.max_event_bytes} "
                                  "bytes", limit=state.settings.max_event_bytes)
        if data.strip():
            try:
                fields = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise BadRequest("the body must be a JSON object (or empty, with the fields in "
                                 "the query)") from None
            if not isinstance(fields, dict):
                raise BadRequest("the body must be a JSON object")
    fields.update(_query(request))
    received = datetime.now(UTC)
    check_in = http_check_in(request.path_params["slug"], fields, project_id, received)
    await _commit(state, Batch(check_ins=[check_in], item_counts={"check_in": 1},
                               received_at=isoformat_utc(received)), key)
    return JSON({"id": check_in.check_in_id}, status_code=202)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: Prometheus's text format, for a bearer of ``SHIM_METRICS_TOKEN`` or
    ``SHIM_ADMIN_TOKEN``; 404 when neither is set (the route does not exist then)."""
    state = _state(request)
    tokens = state.settings.metrics_tokens
    if not tokens or state.metrics is None:
        raise HTTPException(404)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Every token compared, in constant time each, whichever matches.
    matches = [hmac.compare_digest(given.strip().encode(), t.encode()) for t in tokens]
    if scheme.lower() != "bearer" or not any(matches):
        # Answered here, not through ``_error``: this is no scanner with a wrong DSN key.
        refused = Unauthorized("GET /metrics needs `Authorization: Bearer <SHIM_METRICS_TOKEN>`")
        return JSON(refused.body(), status_code=refused.status,
                    headers={**refused.headers, "WWW-Authenticate": "Bearer"})
    await update_gauges(state)
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)


async def healthz(request: Request) -> Response:
    state = _state(request)
    writer = state.writer
    behind, lag_bytes = await writer.run_in_thread(writer.journal.lag)
    store_state = "down" if writer.store_error else "catching_up" if behind else "ok"
    degraded = writer.log_error is not None or store_state != "ok"
    return JSON({
        "status": "degraded" if degraded else "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - state.started, 1),
        "worker": {"pid": os.getpid(), "of": state.settings.workers},
        "store": {**state.store_summary, "state": store_state, "error": writer.store_error,
                  "lag_bytes": lag_bytes},
        "backup_log": {"state": "error" if writer.log_error else "ok",
                       "error": writer.log_error},
        "events_stored": state.stored,
        "duplicates": state.duplicates,
        "events_trimmed": state.trimmed,
        "transactions": state.writer.transactions,
        "items": dict(state.items),
        "rate_limited": state.limiter.refused,
        "refused": state.refusals.as_json(),
        "stored_slim": state.storm.slimmed,
        "forward": state.forwarder.summary() if state.forwarder is not None else None,
        "alerts": {"channels": [  # masked: a channel URL's secrets never leave the server
            {"name": c.name, "kind": c.kind, "url": c.masked, "filters": c.filters.as_text()}
            for c in state.settings.notify]},
    # Unable to keep events at all (the backup log cannot be written): unhealthy, so a container
    # health check notices. A store that is only behind still takes events: healthy, degraded.
    }, status_code=503 if writer.log_error else 200)


def _error(request: Request, exc: Exception, state: State | None = None) -> Response:
    """The one JSON error shape; refusals (401, 403, 413, 429) are also counted and told
    (``shim.refusals``)."""
    if isinstance(exc, ShimError):
        status, body, headers = exc.status, exc.body(), dict(exc.headers)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        body = {"detail": exc.detail, "code": {404: "not_found", 405: "method_not_allowed"}
                .get(exc.status_code, "http_error")}
        headers = dict(exc.headers or {})
    else:  # pragma: no cover - a bug of ours; logged, and still answered in the same shape
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        status, body, headers = 500, {"detail": "internal error", "code": "internal"}, {}
    headers["X-Sentry-Error"] = str(body["detail"])[:200].encode("ascii", "replace").decode()
    if status in REFUSALS:
        state = state or getattr(request.app.state, "shim", None)  # (Starlette's door)
        if state is not None:
            key = request.scope.get(REFUSED_KEY) or request_key(request.headers, _query(request))
            state.refusals.note(status, key, str(body["detail"]), request.url.path)
    return JSON(body, status_code=status, headers=headers)


class Edge:
    """The ASGI app uvicorn runs: the SDKs' envelope POST straight to ``_envelope``, every other
    request to the Starlette app behind it.

    An envelope POST is nearly every request a server answers, and Starlette's layers around it
    (error and CORS middleware, routing, the ``Request`` and ``Response`` objects) cost a sixth
    of the event loop's time under load. The door taken makes no difference to the answer: the
    same ``_envelope`` answers, errors become the same JSON (``_error``), and the response gets
    the ``Vary: Origin`` the CORS middleware adds. A request with
    an ``Origin`` header (a browser SDK) takes Starlette's door, for its CORS headers; so do paths
    that are not exactly ``/api/{project}/envelope/`` (Starlette redirects a missing slash).
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state: State | None = None  # the lifespan's, once the server has started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if (state is not None and state.metrics is not None and scope["type"] == "http"
                and scope["method"] == "POST" and scope["path"].endswith(_INGEST_PATHS)):
            await self._measured(state.metrics, scope, receive, send)
            return
        await self._route(scope, receive, send)

    async def _measured(self, metrics: Metrics, scope: Scope, receive: Receive,
                        send: Send) -> None:
        """An ingest request, timed and counted by the status it was answered with."""
        began = time.perf_counter()
        answered = [500]  # what the client sees when the app fails before answering

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = message["status"]
            await send(message)

        try:
            await self._route(scope, receive, sending)
        finally:
            metrics.request_seconds.observe(time.perf_counter() - began)
            metrics.answered(answered[0])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if scope["type"] == "http" and scope["method"] == "POST" and state is not None:
            path: str = scope["path"]
            project = path[5:-10]
            if (path.startswith("/api/") and path.endswith("/envelope/") and project
                    and "/" not in project and not scope.get("root_path")
                    and not any(name == b"origin" for name, _ in scope["headers"])):
                await self._envelope(state, project, scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _envelope(state: State, project: str, scope: Scope, receive: Receive,
                        send: Send) -> None:
        request = Request(scope, receive)
        response: Response
        try:
            response = JSON(await _envelope(state, project, request))
        except ClientDisconnect:
            return  # nobody to answer (uvicorn sends nothing to a closed connection)
        except Exception as exc:
            response = _error(request, exc, state)
        response.raw_headers.append((b"vary", b"Origin"))
        await response(scope, receive, send)


def create_app(settings: Settings, keys: Keys, store: Store | None = None) -> Edge:
    """The ASGI app. ``store`` defaults to the one ``settings.database_url`` names (see
    ``open_journal``)."""

    site = Site(settings, keys)  # the web page at /: no routes without SHIM_ADMIN_TOKEN

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running(settings, keys, store) as state:
            app.state.shim = edge.state = state
            site.announce()
            yield
            site.close()

    routes = [
        Route("/api/{project_id}/envelope/", envelope_endpoint, methods=["POST"]),
        Route("/api/{project_id}/store/", store_endpoint, methods=["POST"]),
        Route("/api/{project_id}/cron/{slug}/{key}/", cron_endpoint, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *site.routes(),
    ]
    middleware = [Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["X-Sentry-Error", "X-Sentry-Rate-Limits", "Retry-After"],
        max_age=3600,
    )]
    edge = Edge(Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Exception: _error, HTTPException: _error, ShimError: _error},
    ))
    return edge
