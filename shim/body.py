"""Reading a request body under two caps: bytes as sent, and bytes after decompression.

Both caps are enforced while streaming. Every decoder hands out output in bounded steps, so a small
gzip, brotli or zstd bomb is stopped as soon as its output passes the decoded cap, and is never
held in memory whole.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import AsyncIterable, Iterator
from typing import Protocol

import brotli
import zstandard

from shim.errors import BadCompression, PayloadTooLarge, UnsupportedEncoding

STEP = 64 * 1024  # most output one decoder call may produce


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> Iterator[bytes]: ...
    def finish(self) -> Iterator[bytes]: ...


class Identity:
    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if chunk:
            yield chunk

    def finish(self) -> Iterator[bytes]:
        return iter(())


class Zlib:
    """gzip (``wbits=31``), zlib-wrapped deflate, or raw deflate, detected from the first bytes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._obj: zlib._Decompress | None = None
        self._head = b""

    def _start(self, first: bytes) -> zlib._Decompress:
        if self.name in ("gzip", "x-gzip"):
            return zlib.decompressobj(31)
        # HTTP's "deflate" is meant to be zlib-wrapped, but some clients send raw deflate.
        is_zlib = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(15 if is_zlib else -15)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self._obj is None:
            self._head += chunk
            if len(self._head) < 2:
                return
            self._obj, chunk, self._head = self._start(self._head), self._head, b""
        yield from self._drain(chunk)

    def _drain(self, data: bytes) -> Iterator[bytes]:
        assert self._obj is not None
        while data:
            if self._obj.eof:
                rest = self._obj.unused_data + data
                if self.name in ("gzip", "x-gzip") and rest.startswith(b"\x1f\x8b"):
                    self._obj = zlib.decompressobj(31)  # another gzip member follows
                    data = rest
                    continue
                if rest.strip(b"\x00\r\n\t "):
                    raise BadCompression(f"{self.name} body has data after the end of the stream")
                return
            try:
                out = self._obj.decompress(data, STEP)
            except zlib.error as exc:
                raise BadCompression(f"{self.name} body cannot be decoded: {exc}") from None
            data = self._obj.unconsumed_tail
            if out:
                yield out

    def finish(self) -> Iterator[bytes]:
        if self._obj is None:
            if not self._head:
                return  # an empty body is legal
            self._obj = self._start(self._head)
            yield from self._drain(self._head)
        if not self._obj.eof:
            raise BadCompression(f"{self.name} body is truncated")


class Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()
        self._seen = False

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if not chunk:
            return
        self._seen = True
        try:
            out = self._obj.process(chunk, output_buffer_limit=STEP)
            if out:
                yield out
            while not self._obj.can_accept_more_data():
                out = self._obj.process(b"", output_buffer_limit=STEP)
                if out:
                    yield out
        except brotli.error as exc:
            raise BadCompression(f"br body cannot be decoded: {exc}") from None

    def finish(self) -> Iterator[bytes]:
        if self._seen and not self._obj.is_finished():
            raise BadCompression("br body is truncated")
        return iter(())


class Zstd:
    """zstd's one-shot decompressobj has no output bound, so the (already capped) compressed bytes
    are kept and read back through a stream reader in bounded steps."""

    def __init__(self) -> None:
        self._compressed = bytearray()

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._compressed += chunk
        return iter(())

    def finish(self) -> Iterator[bytes]:
        if not self._compressed:
            return
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(bytes(self._compressed)), read_across_frames=True
        )
        try:
            while out := reader.read(STEP):
                yield out
        except zstandard.ZstdError as exc:
            raise BadCompression(f"zstd body cannot be decoded: {exc}") from None


def decoder_for(content_encoding: str | None) -> Decoder:
    """A decoder for one Content-Encoding value, or a chain for a comma-separated list."""
    names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
    names = [n for n in names if n != "identity"]
    if not names:
        return Identity()
    if len(names) > 2:
        raise UnsupportedEncoding("at most two Content-Encodings may be stacked")
    decoders = [_single(n) for n in names]
    return decoders[0] if len(decoders) == 1 else Chain(decoders[::-1])


def _single(name: str) -> Decoder:
    if name in ("gzip", "x-gzip", "deflate"):
        return Zlib(name)
    if name == "br":
        return Brotli()
    if name == "zstd":
        return Zstd()
    raise UnsupportedEncoding(
        f"Content-Encoding {name!r} is not supported; use identity, gzip, deflate, br or zstd"
    )


class Chain:
    """Encodings applied in order; decoded in reverse (the list given is already reversed)."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self._outer, self._inner = decoders

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        for piece in self._outer.feed(chunk):
            yield from self._inner.feed(piece)

    def finish(self) -> Iterator[bytes]:
        for piece in self._outer.finish():
            yield from self._inner.feed(piece)
        yield from self._inner.finish()


async def read_body(
    chunks: AsyncIterable[bytes],
    content_encoding: str | None,
    max_body: int,
    max_decoded: int,
) -> bytes:
    """Read and decode a body, raising ``PayloadTooLarge`` as soon as either cap is passed."""
    decoder = decoder_for(content_encoding)
    received = 0
    out = bytearray()

    def take(pieces: Iterator[bytes]) -> None:
        for piece in pieces:
            out.extend(piece)
            if len(out) > max_decoded:
                raise PayloadTooLarge(
                    f"body is larger than {max_decoded} bytes once decompressed",
                    limit=max_decoded,
                )

    async for chunk in chunks:
        received += len(chunk)
        if received > max_body:
            raise PayloadTooLarge(f"body is larger than {max_body} bytes", limit=max_body)
        take(decoder.feed(chunk))
    take(decoder.finish())
    return bytes(out)
