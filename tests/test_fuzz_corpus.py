"""Replay the corpus kept from the coverage-guided runs (``python -m bench.fuzz``) through the same
target functions: the parser, the pure ingest core and the HTTP app each keep their properties on
every input the fuzzer found interesting. No atheris needed; run from the repository root with
``python -m pytest`` (as ``scripts/test`` does) so that ``bench`` is importable."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bench.fuzz import (
    PATHS,
    Broken,
    HttpTarget,
    check_envelope,
    check_ingest,
    http_input,
    http_target,
    no_logged_errors,
)

CORPUS = Path(__file__).parent / "fixtures" / "fuzz" / "corpus"
PURE = {"envelope": check_envelope, "ingest": check_ingest}


def kept(target: str) -> list[Path]:
    return sorted(path for path in (CORPUS / target).iterdir() if path.is_file())


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpTarget]:
    with http_target(tmp_path_factory.mktemp("fuzz-http")) as target:
        yield target


@pytest.mark.parametrize("target", ["envelope", "ingest", "http"])
def test_a_corpus_is_kept(target: str) -> None:
    assert len(kept(target)) >= 10  # an emptied corpus would make the replays pass vacuously


@pytest.mark.parametrize("path", kept("envelope") + kept("ingest"),
                         ids=lambda p: f"{p.parent.name}-{p.name[:12]}")
def test_pure_core_holds_on_the_corpus(path: Path) -> None:
    PURE[path.parent.name](path.read_bytes())


@pytest.mark.parametrize("path", kept("http"), ids=lambda p: p.name[:12])
def test_http_app_holds_on_the_corpus(http: HttpTarget, path: Path) -> None:
    http(path.read_bytes())


# The checks themselves can fail: each is shown an answer or a log it must refuse.

async def _answer_500(request: Request) -> Response:
    return JSONResponse({"detail": "internal error", "code": "internal"}, status_code=500)


async def _answer_bad_shape(request: Request) -> Response:
    return JSONResponse({"error": "no detail, no code"}, status_code=400)


@pytest.mark.parametrize(("handler", "message"), [
    (_answer_500, "status 500"),
    (_answer_bad_shape, "without the error shape"),
])
def test_http_check_refuses_a_500_and_a_bad_error_shape(handler: object, message: str) -> None:
    app = Starlette(routes=[Route(PATHS[0], handler, methods=["POST"])])  # type: ignore[arg-type]
    with TestClient(app) as client, pytest.raises(Broken, match=message):
        HttpTarget(client)(http_input(PATHS[0], 0, None, "header", b"{}\n"))


def test_an_exception_shim_only_logs_is_a_crash() -> None:
    with pytest.raises(Broken, match="could not process") as caught, no_logged_errors():
        try:
            raise ZeroDivisionError
        except ZeroDivisionError:
            logging.getLogger("shim.ingest").exception("could not process item 1 (event)")
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_only_refusals_leave_the_pure_core() -> None:
    check_envelope(b"not json\n")  # InvalidEnvelope: a refusal, fine
    check_ingest(b'{"event_id": "nope"}')  # InvalidEvent from the store path: fine
