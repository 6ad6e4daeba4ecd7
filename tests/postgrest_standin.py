"""A local stand-in for Supabase's REST API (PostgREST behind its API gateway), for the tests only.

It is NOT Supabase and NOT PostgREST: it speaks just enough of PostgREST's protocol for what the
``supabase`` client sends for ``shim.store.supabase``, and runs every request on a real local
Postgres, translated the way PostgREST translates it:

- ``POST /rest/v1/rpc/<fn>``: the JSON body's keys are the function's named arguments, typed by the
  function's signature (``SELECT fn(arg := _.arg) FROM json_to_record($1) AS _(arg jsonb)``); the
  answer is the function's result as JSON. No function with those argument names: 404 PGRST202.
- ``GET``/``HEAD /rest/v1/<table>?select=…&col=op.value&order=col.desc&limit=N&offset=M``: a SELECT
  aggregated with ``json_agg`` (so times, numbers and JSON render as Postgres renders them), with
  ``Prefer: count=exact`` answered in ``Content-Range``. Tables, columns and operators are
  whitelisted; values are bound parameters cast to the column's type.
- The gateway's check: ``apikey`` must be the service key and ``Authorization`` its Bearer token,
  else 401. Postgres errors come back as PostgREST's error JSON with its HTTP status.

Every request is recorded (method, path, query, headers, body) so tests can assert what the client
sent. Roles, RLS and JWT claims are not emulated: everything runs as the local connection's user.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
import psycopg
import uvicorn
from psycopg import sql
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TABLES = frozenset({"bugs", "error_logs", "status_changes", "item_counts", "check_ins",
                    "schema_migrations", "bug_hashes", "shim_meta"})
OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: Any  # decoded JSON, or None


class ApiError(Exception):
    """An answer in PostgREST's error shape."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.hint = details, hint

    def response(self) -> Response:
        body = {"code": self.code, "message": self.message, "details": self.details,
                "hint": self.hint}
        return Response(orjson.dumps(body), self.status, media_type="application/json")


def _status_of(sqlstate: str) -> int:
    """PostgREST's HTTP status for a Postgres error (its documented SQLSTATE table, abridged)."""
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate.startswith(("08", "53")):
        return 503
    if sqlstate.startswith(("22", "23")) or sqlstate == "P0001":
        return 400
    if sqlstate in ("42883", "42P01"):
        return 404
    if sqlstate == "42501":
        return 403
    if sqlstate == "25006":
        return 405
    return 500


def _in_list(text: str) -> list[str]:
    """The values of ``in.(a,"b,c",d)``: comma-separated, double quotes with backslash escapes."""
    if not (text.startswith("(") and text.endswith(")")):
        raise ApiError(400, "PGRST100", f"failed to parse filter (in.{text})")
    if text == "()":
        return []
    values: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text[1:-1]:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return values


def _api_error(exc: psycopg.Error) -> ApiError:
    state = exc.sqlstate or "XX000"
    return ApiError(_status_of(state), state, exc.diag.message_primary or str(exc),
                    exc.diag.message_detail, exc.diag.message_hint)


class Standin:
    """The app plus what it saw; ``serve()`` runs it under uvicorn on a free local port."""

    def __init__(self, database_url: str, service_key: str, timezone: str = "UTC") -> None:
        self.database_url = database_url
        self.service_key = service_key
        self.timezone = timezone
        self.requests: list[Recorded] = []
        self.app = Starlette(routes=[
            Route("/rest/v1/rpc/{function}", self._rpc, methods=["POST"]),
            Route("/rest/v1/{table}", self._table, methods=["GET", "HEAD"]),
        ])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # Serving.

    def serve(self, port: int = 0) -> str:
        """Start on ``port`` (a free one when 0); after ``stop()``, ``serve(port)`` with the port
        of ``url`` brings the same address back, as a Supabase project returns after an outage."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True, name="postgrest-standin")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the PostgREST stand-in did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    # Requests.

    async def _record(self, request: Request) -> Recorded:
        raw = await request.body()
        seen = Recorded(method=request.method, path=request.url.path,
                        query=parse_qsl(request.url.query, keep_blank_values=True),
                        headers={k.lower(): v for k, v in request.headers.items()},
                        body=orjson.loads(raw) if raw else None)
        self.requests.append(seen)
        return seen

    def _authorise(self, seen: Recorded) -> None:
        # Supabase's gateway wants the key in apikey; PostgREST takes the role from the JWT in
        # Authorization. Here the service key must be in both.
        if seen.headers.get("apikey") != self.service_key:
            raise ApiError(401, "401", "Invalid API key")
        if seen.headers.get("authorization") != f"Bearer {self.service_key}":
            raise ApiError(401, "PGRST301", "No suitable key or wrong key type")

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, options=f"-c timezone={self.timezone}")

    async def _rpc(self, request: Request) -> Response:
        try:
            seen = await self._record(request)
            self._authorise(seen)
            function = request.path_params["function"]
            if not _NAME.match(function) or not isinstance(seen.body, dict):
                raise ApiError(400, "PGRST100", "bad function name or body")
            text = await run_in_threadpool(self._call, function, seen.body)
        except psycopg.Error as exc:
            return _api_error(exc).response()
        except ApiError as exc:
            return exc.response()
        return Response(text, 200, media_type="application/json")

    def _call(self, function: str, args: dict[str, Any]) -> str:
        with self._connect() as conn:
            signature = conn.execute(
                "SELECT p.proargnames AS names,"
                " array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) AS t) AS types"
                " FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND p.proname = %s", (function,)).fetchall()
            arguments = next((dict(zip(names or [], types, strict=True))
                              for names, types in signature
                              if set(names or []) == set(args)), None)
            if arguments is None:
                raise ApiError(404, "PGRST202",
                               f"Could not find the function public.{function}"
                               f"({', '.join(sorted(args))}) in the schema cache")
            call = sql.SQL(
                "SELECT coalesce((json_agg(r.v) -> 0)::text, 'null') FROM ("
                "SELECT {fn}({named}) AS v FROM json_to_record(%s::json) AS _({columns})) AS r"
            ).format(
                fn=sql.Identifier("public", function),
                named=sql.SQL(", ").join(sql.SQL("{} := _.{}").format(sql.Identifier(a),
                                                                       sql.Identifier(a))
                                         for a in arguments),
                columns=sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(t))
                                           for a, t in arguments.items()))
            row = self._one(conn, call, (orjson.dumps(args).decode(),))
            return str(row[0])

    async def _table(self, request: Request) -> Response:
        try:
            seen = await self._record(request)
            self._authorise(seen)
            table = request.path_params["table"]
            if table not in TABLES:
                raise ApiError(404, "PGRST205",
                               f"Could not find the table 'public.{table}' in the schema cache")
            count = "count=exact" in seen.headers.get("prefer", "")
            body, total, n, offset = await run_in_threadpool(self._select, table, seen.query,
                                                             count)
        except psycopg.Error as exc:
            return _api_error(exc).response()
        except ApiError as exc:
            return exc.response()
        rows = f"{offset}-{offset + n - 1}" if n else "*"
        headers = {"Content-Range": f"{rows}/{total if total is not None else '*'}"}
        if request.method == "HEAD":
            return Response(b"", 200, headers=headers, media_type="application/json")
        return Response(body, 200, headers=headers, media_type="application/json")

    def _select(self, table: str, query: list[tuple[str, str]], count: bool,
                ) -> tuple[str, int | None, int, int]:
        with self._connect() as conn:
            types = dict(conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (f"public.{table}",)).fetchall())

            def column(name: str) -> sql.Composable:
                """A column, or ``col->>field`` (a JSON field as text)."""
                base, arrow, field = name.partition("->>")
                if base not in types or (arrow and not _NAME.match(field)):
                    raise ApiError(400, "42703", f"column {table}.{name} does not exist")
                if arrow:
                    return sql.SQL("({} ->> {})").format(sql.Identifier(base), sql.Literal(field))
                return sql.Identifier(name)

            def selected(item: str) -> sql.Composable:
                """``col``, ``col->>field`` (named ``field``) or ``alias:expression``."""
                alias, _, expression = item.rpartition(":")
                alias = alias or expression.rpartition("->>")[2]
                return sql.SQL("{} AS {}").format(column(expression), sql.Identifier(alias))

            def condition(key: str, value: str) -> sql.Composable:
                negate = value.startswith("not.")
                operator, _, operand = value.removeprefix("not.").partition(".")
                cast = sql.SQL(types.get(key, "text"))
                if operator in OPERATORS:
                    found = sql.SQL("{} {} %s::{}").format(
                        column(key), sql.SQL(OPERATORS[operator]), cast)
                    params.append(operand)
                elif operator in ("like", "ilike"):  # PostgREST's * is SQL's %
                    found = sql.SQL("{} {} %s").format(column(key), sql.SQL(operator.upper()))
                    params.append(operand.replace("*", "%"))
                elif operator == "in":
                    found = sql.SQL("{} = ANY(%s::{}[])").format(column(key), cast)
                    params.append(_in_list(operand))
                elif operator == "is" and operand in ("null", "true", "false"):
                    found = sql.SQL("{} IS {}").format(column(key), sql.SQL(operand.upper()))
                else:
                    raise ApiError(400, "PGRST100", f"unknown operator ({value})")
                return sql.SQL("NOT ({})").format(found) if negate else found

            columns: sql.Composable = sql.SQL("*")
            where: list[sql.Composable] = []
            params: list[Any] = []
            order: list[sql.Composable] = []
            limit: int | None = None
            offset = 0
            for key, value in query:
                if key == "select":
                    if value != "*":
                        columns = sql.SQL(", ").join(selected(c) for c in value.split(","))
                elif key == "order":
                    for term in value.split(","):
                        name, *rest = term.split(".")
                        direction = {"asc": "ASC", "desc": "DESC"}.get(rest[0] if rest else "asc")
                        if direction is None or len(rest) > 1:
                            raise ApiError(400, "PGRST100", f"failed to parse order ({term})")
                        order.append(sql.SQL("{} {}").format(column(name), sql.SQL(direction)))
                elif key in ("limit", "offset"):
                    if not value.isdigit():
                        raise ApiError(400, "PGRST100", f"bad {key} ({value})")
                    if key == "limit":
                        limit = int(value)
                    else:
                        offset = int(value)
                elif key == "or":  # or=(col.op.value,...): flat lists only
                    alternatives = [condition(*term.split(".", 1)) for term in _in_list(value)]
                    where.append(sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives)))
                else:
                    where.append(condition(key, value))
            condition = sql.SQL(" AND ").join(where) if where else sql.SQL("true")
            inner = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                columns, sql.Identifier("public", table), condition)
            if order:
                inner += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(order)
            if limit is not None:
                inner += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
            if offset:
                inner += sql.SQL(" OFFSET {}").format(sql.Literal(offset))
            row = self._one(conn, sql.SQL(
                "SELECT coalesce(json_agg(t), '[]')::text, count(*) FROM ({}) AS t").format(inner),
                params)
            total = None
            if count:
                counted = self._one(conn, sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                    sql.Identifier("public", table), condition), params)
                total = int(counted[0])
            return str(row[0]), total, int(row[1]), offset

    @staticmethod
    def _one(conn: psycopg.Connection[Any], query: sql.Composed, params: Any) -> tuple[Any, ...]:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return tuple(row)
