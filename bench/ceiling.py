"""The ceiling: the least a Starlette envelope endpoint can do, served like ``shim serve``.

``POST /api/{project_id}/envelope/`` reads the whole body, decodes it (gzip, deflate, br) with
``--decode`` (else it must be sent uncompressed), parses the envelope header line with orjson and answers
``200 {"id": ...}``. No auth, no caps, no parsing of items, no storage: whatever shim reaches is
measured as a share of this, on the same machine in the same run.

    python -m bench.ceiling --port 8100 [--decode]
"""

from __future__ import annotations

import argparse
import zlib

import brotli
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def decode(data: bytes, encoding: str | None) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(data, 31)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "br":
        return bytes(brotli.decompress(data))
    return data


def create_app(decode_body: bool) -> Starlette:
    async def envelope(request: Request) -> Response:
        data = await request.body()
        if decode_body:
            data = decode(data, request.headers.get("content-encoding"))
        header = orjson.loads(data.split(b"\n", 1)[0])
        body = {"id": header["event_id"]} if "event_id" in header else {}
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/api/{project_id}/envelope/", envelope, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--decode", action="store_true", help="decode Content-Encoding")
    args = parser.parse_args()
    # The same uvicorn settings as `shim serve` at SHIM_LOG_LEVEL=warning.
    uvicorn.run(create_app(args.decode), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, server_header=False)


if __name__ == "__main__":
    main()
