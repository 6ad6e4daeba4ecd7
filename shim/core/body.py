"""Reading a request body under two caps: bytes as sent, and bytes after decompression.

Both caps are enforced while streaming. Every decoder hands out output in bounded steps, so a small
gzip, brotli or zstd bomb is stopped as soon as its output passes the decoded cap, and is never
held in memory whole.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import zlib
from collections.abc import AsyncIterable, Iterator
from typing import Any, Protocol

import brotli
import orjson
import zstandard
from isal import isal_zlib

from shim.core.errors import BadCompression, InvalidEvent, PayloadTooLarge, UnsupportedEncoding

STEP = 64 * 1024  # most output one decoder call may produce
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # stub: an instance


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> Iterator[bytes]: ...
    def finish(self) -> Iterator[bytes]: ...


class Identity:
    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if chunk:
            yield chunk

    def finish(self) -> Iterator[bytes]:
        return iter(())


MAX_GZIP_HEADER = 64 * 1024  # a name or comment longer than this is not a body we take


def _gzip_header_size(data: bytes) -> int | None:
    """The size of the gzip member header (RFC 1952) at the start of ``data``, or None while it
    is incomplete. Only the lengths are read; the decompressor checks the rest."""
    if len(data) < 10:
        return None
    flags, size = data[3], 10
    if flags & 0x04:  # FEXTRA: two bytes of length, then that many bytes
        if len(data) < size + 2:
            return None
        size += 2 + int.from_bytes(data[size:size + 2], "little")
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = data.find(b"\x00", size)
            if end < 0:
                return None
            size = end + 1
    if flags & 0x02:  # FHCRC
        size += 2
    return size if len(data) >= size else None


class Zlib:
    """gzip (``wbits=31``, several members allowed), zlib-wrapped deflate, or raw deflate, told
    apart from the first bytes. Decoded by ISA-L (``isal``: zlib's interface, about twice as
    fast at inflating)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._gzip = name in ("gzip", "x-gzip")
        self._obj: Any = None  # None before a stream starts and after it ends
        self._ended = False  # at least one stream (gzip member) has ended
        self._pending = b""  # input not yet handed to a decompressor
        # The last call stopped at STEP bytes of output: zlib may still hold output (and may have
        # consumed all its input into its bit buffer), so it must be asked again with no input.
        self._full = False

    def _start(self, first: bytes) -> Any:
        if self._gzip:
            return isal_zlib.decompressobj(31)
        # HTTP's "deflate" is meant to be zlib-wrapped, but some clients send raw deflate.
        is_zlib = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return isal_zlib.decompressobj(15 if is_zlib else -15)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        # A STEP of input at a time: zlib copies the input it has not used yet into
        # ``unconsumed_tail`` after every bounded call, which is quadratic in a large chunk.
        for start in range(0, len(chunk), STEP):
            self._pending += chunk[start:start + STEP]
            yield from self._drain(final=False)

    def _drain(self, final: bool) -> Iterator[bytes]:
        while True:
            if self._obj is None:
                if not self._pending or not self._begin(final):
                    return
            elif not (self._pending or self._full):
                return
            assert self._obj is not None
            data, self._pending = self._pending, b""
            try:
                out = self._obj.decompress(data, STEP)
            except _INFLATE_ERROR as exc:
                raise BadCompression(f"{self.name} body cannot be decoded: {exc}") from None
            self._full = len(out) >= STEP
            if self._obj.eof:
                self._pending = self._obj.unused_data + self._obj.unconsumed_tail
                self._obj, self._ended, self._full = None, True, False
            else:
                self._pending = self._obj.unconsumed_tail
            if out:
                yield out

    def _begin(self, final: bool) -> bool:
        """Start a decompressor on ``_pending`` if it holds the start of a stream; False to wait."""
        data = self._pending
        if self._ended:  # after the end of a stream: another gzip member, or padding
            if self._gzip and data.startswith(b"\x1f\x8b"):
                if not final and not self._whole_header(data):
                    return False
                self._obj = isal_zlib.decompressobj(31)
                return True
            if self._gzip and not final and b"\x1f\x8b".startswith(data):
                return False  # the next member's magic is split across chunks
            if data.strip(b"\x00\r\n\t "):
                raise BadCompression(f"{self.name} body has data after the end of the stream")
            self._pending = b""
            return False
        if len(data) < 2 and not final:
            return False  # deflate's wrapping is told from the first two bytes
        if self._gzip and not final and not self._whole_header(data):
            return False
        self._obj = self._start(data)
        return True

    def _whole_header(self, data: bytes) -> bool:
        """Whether ``data`` holds a whole gzip member header. ISA-L fails on a header with
        optional fields (name, comment, extra, header CRC) that arrives in pieces, so a member
        is started only once its header is here."""
        size = _gzip_header_size(data)
        if size is None and len(data) > MAX_GZIP_HEADER:
            raise BadCompression(f"{self.name} body has a header longer than "
                                 f"{MAX_GZIP_HEADER} bytes")
        return size is not None

    def finish(self) -> Iterator[bytes]:
        yield from self._drain(final=True)
        if self._obj is not None:  # an empty body is legal; a stream that never ended is not
            raise BadCompression(f"{self.name} body is truncated")


class Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()
        self._seen = False

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if chunk:
            self._seen = True
            yield from self._process(chunk)

    def _process(self, data: bytes) -> Iterator[bytes]:
        try:
            out = self._obj.process(data, output_buffer_limit=STEP)
            # Once an output reaches the limit the decoder holds the rest back (even when it can
            # take more input) until it is asked again with empty input.
            while True:
                if out:
                    yield out
                if len(out) < STEP and self._obj.can_accept_more_data():
                    return
                out = self._obj.process(b"", output_buffer_limit=STEP)
        except brotli.error as exc:
            raise BadCompression(f"br body cannot be decoded: {exc}") from None

    def finish(self) -> Iterator[bytes]:
        if not self._seen:
            return  # an empty body is legal
        yield from self._process(b"")
        if not self._obj.is_finished():
            raise BadCompression("br body is truncated")


class Zstd:
    """zstd's decompressobj has no output bound, but a block is at most 128 KiB of output. So the
    frames are followed as they stream by (RFC 8878: frame header, block headers, checksum) and
    each block is handed over on its own: every call yields at most one block. Following the
    frames also shows a body cut short, which the library would take for a clean end, and lets
    skippable frames be dropped without decoding."""

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._obj: Any = None  # the decoder of the current (or last) frame
        self._rest = b""  # the start of a header not yet complete
        self._expect = "frame"  # what the next bytes are: "frame" or "block" header
        self._skip = 0  # bytes of a skippable frame still to drop
        self._feed = 0  # bytes of a block body (or of the checksum) still to hand over
        self._last = False  # the current block is the frame's last
        self._checksum = False  # the current frame ends with a 4-byte checksum

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        data = self._rest + chunk if self._rest else chunk
        self._rest = b""
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            if self._skip:
                taken = min(self._skip, len(data) - pos)
                self._skip -= taken
                pos += taken
            elif self._feed:
                taken = min(self._feed, len(data) - pos)
                yield from self._decode(view[pos:pos + taken])
                self._feed -= taken
                pos += taken
                if not self._feed:
                    self._block_done()
            elif self._expect == "block":
                if len(data) - pos < 3:
                    break
                header = int.from_bytes(view[pos:pos + 3], "little")
                if header >> 1 & 3 == 3:
                    raise BadCompression("zstd body cannot be decoded: reserved block type")
                yield from self._decode(view[pos:pos + 3])
                pos += 3
                self._last = bool(header & 1)
                # An RLE block carries one byte, whatever size it decodes to.
                self._feed = 1 if header >> 1 & 3 == 1 else header >> 3
                if not self._feed:
                    self._block_done()
            else:
                size = self._frame_header(view[pos:])
                if not size:
                    break
                if self._obj is not None:  # the library checks the header (window size too)
                    yield from self._decode(view[pos:pos + size])
                pos += size
        self._rest = bytes(view[pos:])  # a header split across chunks

    def _frame_header(self, data: memoryview) -> int:
        """Start a frame from its header at the start of ``data``: the header's size, or 0 while
        it is incomplete."""
        if len(data) < 4:
            return 0
        magic = int.from_bytes(data[:4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame: its size, then data to ignore
            if len(data) < 8:
                return 0
            self._skip = int.from_bytes(data[4:8], "little")
            self._obj = None  # nothing to decode
            return 8
        if magic != 0xFD2FB528:
            raise BadCompression("zstd body cannot be decoded: not a zstd frame")
        if len(data) < 5:
            return 0
        descriptor = data[4]
        single_segment = descriptor >> 5 & 1
        size = (5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3]
                + (single_segment, 2, 4, 8)[descriptor >> 6])
        if len(data) < size:
            return 0
        self._obj = self._dctx.decompressobj()
        self._checksum = bool(descriptor & 4)
        self._expect = "block"
        return size

    def _block_done(self) -> None:
        if not self._last:
            return
        if self._checksum:
            self._checksum, self._feed = False, 4  # hand the checksum over like a block
            return
        if not self._obj.eof:
            raise BadCompression("zstd body cannot be decoded: frame does not end after its "
                                 "last block")
        self._expect, self._last = "frame", False

    def _decode(self, data: memoryview) -> Iterator[bytes]:
        try:
            out = self._obj.decompress(data)
        except zstandard.ZstdError as exc:
            raise BadCompression(f"zstd body cannot be decoded: {exc}") from None
        if out:
            yield out

    def finish(self) -> Iterator[bytes]:
        if self._rest or self._skip or self._feed or self._expect != "frame":
            raise BadCompression("zstd body is truncated")
        return iter(())


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


def legacy_store_json(data: bytes) -> Any:
    """Store bodies: JSON, or (old raven clients) zlib-deflated JSON, possibly base64-encoded."""
    candidates = [data]
    stripped = data.strip()
    if stripped[:1] != b"{":
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.b64decode(stripped, validate=False))
        for blob in list(candidates):
            with contextlib.suppress(zlib.error):
                candidates.append(zlib.decompressobj().decompress(blob, 16 * 1024 * 1024))
    for blob in reversed(candidates):
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(blob)
    raise InvalidEvent("store body is not a JSON event (nor zlib/base64-encoded JSON)")
