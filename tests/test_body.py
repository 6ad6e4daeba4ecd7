"""``shim.core.body.read_body``: every Content-Encoding, good and malformed, each fed in several chunk
sizes (1 byte up to all at once), the two caps, and decompression bombs that must be stopped
without ever being held in memory."""

from __future__ import annotations

import asyncio
import gzip
import random
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterable

import brotli
import pytest
import zstandard

from shim.core.body import read_body
from shim.core.errors import BadCompression, PayloadTooLarge, ShimError, UnsupportedEncoding

MB = 1024 * 1024
BIG = 64 * MB  # caps that never bind
CHUNK_SIZES = (1, 7, 4096, 1 << 30)  # 1 << 30: the whole body in one chunk

# Long enough to need several decoder steps (64 KiB), compressible, and with a random part.
RAW = random.Random(0).randbytes(3000) + b"A" * 150_000 + b"\n".join(b"line %d" % n for n in range(5000))
SMALL = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hi"}'


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def zstd_stream(data: bytes) -> bytes:
    """A frame without a content size, as streaming compressors write it."""
    compressor = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    return compressor.compress(data) + compressor.flush()


def gzip_with_every_header_field(data: bytes) -> bytes:
    """A gzip member with FEXTRA, FNAME, FCOMMENT and FHCRC set (RFC 1952), which SDKs do not
    write but any gzip tool may."""
    head = b"\x1f\x8b\x08\x1e" + b"\x00" * 4 + b"\x00\xff"
    head += struct.pack("<H", 6) + b"AB\x02\x00hi" + b"name.json\x00" + b"a comment\x00"
    head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    return head + raw_deflate(data) + struct.pack("<II", zlib.crc32(data), len(data))


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "gzip (every header field)": gzip_with_every_header_field,
    "gzip (two members, every header field)": lambda data: (
        gzip_with_every_header_field(data[:len(data) // 2])
        + gzip_with_every_header_field(data[len(data) // 2:])),
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as HTTP means it
    "deflate (raw)": raw_deflate,  # what some clients send instead
    "br": lambda data: brotli.compress(data, quality=5),
    "zstd": zstandard.ZstdCompressor().compress,
    "zstd (streamed frame)": zstd_stream,
    "zstd (with checksum)": zstandard.ZstdCompressor(write_checksum=True).compress,
    "gzip, br": lambda data: brotli.compress(gzip.compress(data)),
    "zstd, gzip": lambda data: gzip.compress(zstandard.ZstdCompressor().compress(data)),
}


def header(name: str) -> str:
    return name.split(" (")[0]


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def read(data: bytes | Iterable[bytes], encoding: str | None, size: int = 4096,
         max_body: int = BIG, max_decoded: int = BIG) -> bytes:
    async def chunks() -> AsyncIterator[bytes]:
        if isinstance(data, bytes):
            async for chunk in chunked(data, size):
                yield chunk
        else:
            for chunk in data:
                yield chunk

    return asyncio.run(read_body(chunks(), encoding, max_body, max_decoded))


# --- good bodies ---------------------------------------------------------------------------

IDENTITY = [None, "", "identity", "IDENTITY", " identity , identity "]


@pytest.mark.parametrize("encoding", IDENTITY)
@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_identity(encoding: str | None, size: int) -> None:
    assert read(SMALL, encoding, size) == SMALL


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_decodes(name: str, size: int) -> None:
    body = ENCODERS[name](SMALL if size == 1 else RAW)  # 1-byte chunks of RAW would be slow
    assert read(body, header(name), size) == (SMALL if size == 1 else RAW)


@pytest.mark.parametrize("name", ENCODERS)
def test_empty_payload_compressed(name: str) -> None:
    assert read(ENCODERS[name](b""), header(name), 1) == b""


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "br", "zstd", "gzip, br",
                                      *IDENTITY])
def test_empty_body(encoding: str | None) -> None:
    assert read(b"", encoding) == b""
    assert read([b"", b""], encoding) == b""  # empty chunks, as servers sometimes hand them over


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_gzip_members_are_concatenated(size: int) -> None:
    body = gzip.compress(b"hello ") + gzip.compress(b"world")
    assert read(body, "gzip", size) == b"hello world"


@pytest.mark.parametrize("size", [1, 1000])
def test_zstd_frames_are_concatenated(size: int) -> None:
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    compress = zstandard.ZstdCompressor().compress
    assert read(compress(b"hello ") + skippable + compress(b"world"), "zstd", size) \
        == b"hello world"


@pytest.mark.parametrize("padding", [b"\n", b"\r\n", b"\x00\x00"])
def test_padding_after_gzip_stream_is_ignored(padding: bytes) -> None:
    assert read(gzip.compress(SMALL) + padding, "gzip", 1) == SMALL


def test_output_ending_on_a_step_boundary_is_complete() -> None:
    # Raw deflate has no trailer: its last output can sit inside zlib after the input is used up.
    for length in (64 * 1024, 64 * 1024 + 1, 128 * 1024, 200_000):
        for name in ("deflate (raw)", "br", "gzip", "zstd"):
            assert read(ENCODERS[name](bytes(length)), header(name), 1 << 30) == bytes(length)


# --- malformed bodies ----------------------------------------------------------------------

GZ = gzip.compress(RAW)
BR = brotli.compress(RAW, quality=5)
ZS = zstandard.ZstdCompressor().compress(RAW)
DEFLATE = zlib.compress(RAW)
ZS_CHECKED = zstandard.ZstdCompressor(write_checksum=True).compress(RAW)


def zstd_reserved_block() -> bytes:
    frame = bytearray(zstandard.ZstdCompressor().compress(SMALL))
    frame[zstandard.frame_header_size(bytes(frame))] |= 0b110  # block type 3 is reserved
    return bytes(frame)


def flipped(data: bytes, index: int) -> bytes:
    damaged = bytearray(data)
    damaged[index] ^= 0xFF
    return bytes(damaged)

MALFORMED: dict[str, tuple[bytes, str, type[ShimError]]] = {
    "bad gzip": (b"this is not gzip at all", "gzip", BadCompression),
    "bad gzip header": (b"\x1f\x8b\x09" + GZ[3:], "gzip", BadCompression),
    "gzip data checksum mismatch": (flipped(GZ, -5), "gzip", BadCompression),
    "gzip size mismatch": (flipped(GZ, -1), "gzip", BadCompression),
    "gzip header checksum mismatch": (
        flipped(gzip_with_every_header_field(SMALL), 30), "gzip", BadCompression),
    "deflate checksum mismatch": (flipped(DEFLATE, -1), "deflate", BadCompression),
    "gzip name that never ends": (
        b"\x1f\x8b\x08\x08" + b"\x00" * 6 + b"n" * 70_000, "gzip", BadCompression),
    "truncated gzip": (GZ[: len(GZ) // 2], "gzip", BadCompression),
    "truncated gzip trailer": (GZ[:-3], "gzip", BadCompression),
    "gzip of one byte": (b"\x1f", "gzip", BadCompression),
    "garbage after gzip": (GZ + b"garbage", "gzip", BadCompression),
    "garbage after a small gzip": (gzip.compress(SMALL) + b"garbage", "gzip", BadCompression),
    "garbage after deflate": (zlib.compress(SMALL) + b"garbage", "deflate", BadCompression),
    "truncated second gzip member": (GZ + GZ[:2], "gzip", BadCompression),
    "bad deflate": (b"\xff" * 40, "deflate", BadCompression),
    "truncated deflate": (DEFLATE[:-10], "deflate", BadCompression),
    "truncated raw deflate": (raw_deflate(RAW)[:-10], "deflate", BadCompression),
    "bad br": (b"this is not brotli", "br", BadCompression),
    "truncated br": (BR[: len(BR) // 2], "br", BadCompression),
    "truncated br, last byte": (BR[:-1], "br", BadCompression),
    "garbage after br": (BR + b"garbage", "br", BadCompression),
    "bad zstd": (b"this is not zstd", "zstd", BadCompression),
    "truncated zstd": (ZS[: len(ZS) // 2], "zstd", BadCompression),
    "truncated zstd, last byte": (ZS[:-1], "zstd", BadCompression),
    "truncated zstd magic": (ZS[:3], "zstd", BadCompression),
    "truncated streamed zstd": (zstd_stream(RAW)[:-3], "zstd", BadCompression),
    "garbage after zstd": (ZS + b"garbage", "zstd", BadCompression),
    "zstd checksum mismatch": (flipped(ZS_CHECKED, -1), "zstd", BadCompression),
    "truncated zstd checksum": (ZS_CHECKED[:-2], "zstd", BadCompression),
    "zstd reserved block type": (zstd_reserved_block(), "zstd", BadCompression),
    "zstd window over the decoder's limit": (
        b"\x28\xb5\x2f\xfd\x00\xf8" + b"\x01\x00\x00", "zstd", BadCompression
    ),
    "gzip declared, br sent": (BR, "gzip", BadCompression),
    "stack declared in the wrong order": (brotli.compress(GZ), "br, gzip", BadCompression),
    "unknown encoding": (SMALL, "compress", UnsupportedEncoding),
    "unknown encoding in a stack": (GZ, "gzip, lzma", UnsupportedEncoding),
    "three stacked encodings": (SMALL, "gzip, gzip, gzip", UnsupportedEncoding),
}


@pytest.mark.parametrize(("body", "encoding", "error"), MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("size", [1, 1 << 30])
def test_malformed(body: bytes, encoding: str, error: type[ShimError], size: int) -> None:
    # A big body goes in odd 997-byte chunks rather than 1-byte ones, which would be slow.
    with pytest.raises(error) as raised:
        read(body, encoding, 997 if size == 1 and len(body) > 20_000 else size)
    assert type(raised.value) is error
    assert raised.value.status == 400


@pytest.mark.parametrize("name", ["gzip", "deflate (raw)", "br", "zstd"])
def test_every_truncation_is_detected(name: str) -> None:
    body = ENCODERS[name](SMALL * 20)
    for cut in range(1, len(body)):
        with pytest.raises(BadCompression):
            read(body[:cut], header(name), 5)


# --- caps ----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", [None, "gzip", "br", "zstd"])
def test_body_over_max_body(encoding: str | None) -> None:
    body = RAW if encoding is None else ENCODERS[encoding](RAW)
    with pytest.raises(PayloadTooLarge) as raised:
        read(body, encoding, 4096, max_body=len(body) - 1)
    assert raised.value.status == 413
    assert raised.value.extra["limit"] == len(body) - 1
    assert read(body, encoding, 4096, max_body=len(body)) == RAW  # the cap itself is allowed


@pytest.mark.parametrize("name", list(ENCODERS))
def test_decoded_over_max_decoded(name: str) -> None:
    body = ENCODERS[name](RAW)
    with pytest.raises(PayloadTooLarge) as raised:
        read(body, header(name), 4096, max_decoded=len(RAW) - 1)
    assert raised.value.extra["limit"] == len(RAW) - 1
    assert read(body, header(name), 4096, max_decoded=len(RAW)) == RAW


def test_identity_over_max_decoded() -> None:
    with pytest.raises(PayloadTooLarge):
        read(RAW, None, 4096, max_decoded=len(RAW) - 1)


BOMB_SIZE = 200 * MB


def _bomb(compressor: object, process: str, end: str) -> bytes:
    zeros = bytes(MB)
    parts = [getattr(compressor, process)(zeros) for _ in range(BOMB_SIZE // MB)]
    return b"".join([*parts, getattr(compressor, end)()])


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """200 MB of zeros in each format, built without ever holding the 200 MB."""
    made = {
        "gzip": _bomb(zlib.compressobj(6, zlib.DEFLATED, 31), "compress", "flush"),
        "br": _bomb(brotli.Compressor(quality=1), "process", "finish"),
        "zstd": _bomb(zstandard.ZstdCompressor(level=1).compressobj(), "compress", "flush"),
    }
    # Check they really are bombs: small, and 200 MB once decoded (counted, never held whole).
    gzip_out, gzip_in, gzip_size = zlib.decompressobj(31), made["gzip"], 0
    while gzip_in:
        gzip_size += len(gzip_out.decompress(gzip_in, MB))
        gzip_in = gzip_out.unconsumed_tail
    assert gzip_size + len(gzip_out.flush()) == BOMB_SIZE
    br_out = brotli.Decompressor()
    br_size = len(br_out.process(made["br"], output_buffer_limit=MB))
    while piece := br_out.process(b"", output_buffer_limit=MB):
        br_size += len(piece)
    assert br_size == BOMB_SIZE and br_out.is_finished()
    reader = zstandard.ZstdDecompressor().stream_reader(made["zstd"])
    assert sum(len(piece) for piece in iter(lambda: reader.read(MB), b"")) == BOMB_SIZE
    for name, bomb in made.items():
        assert len(bomb) < 250_000, name
    return made


@pytest.mark.parametrize("name", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("size", [64, 1 << 30])
def test_decompression_bomb_is_stopped_and_never_held(
    bombs: dict[str, bytes], name: str, size: int
) -> None:
    bomb = bombs[name]
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as raised:
            read(bomb, name, size, max_body=10 * MB, max_decoded=MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.extra["limit"] == MB
    assert peak < 10 * MB, f"{name} bomb peaked at {peak} bytes"


def test_bomb_inside_a_stack_is_stopped(bombs: dict[str, bytes]) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            read(gzip.compress(bombs["zstd"]), "zstd, gzip", 4096, max_decoded=MB)
        with pytest.raises(PayloadTooLarge):
            read(brotli.compress(bombs["gzip"]), "gzip, br", 4096, max_decoded=MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * MB


def test_inner_zstd_streams_what_the_outer_decoder_produces() -> None:
    # The gzip layer decodes to 200 MB of zstd input (a skippable frame of zeros, then a real
    # frame): the zstd decoder must consume it as it comes, not collect it first.
    zeros = bytes(MB)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    skippable_header = (0x184D2A50).to_bytes(4, "little") + BOMB_SIZE.to_bytes(4, "little")
    parts = [compressor.compress(skippable_header)]
    parts += [compressor.compress(zeros) for _ in range(BOMB_SIZE // MB)]
    parts += [compressor.compress(zstandard.ZstdCompressor().compress(SMALL)), compressor.flush()]
    body = b"".join(parts)
    tracemalloc.start()
    try:
        assert read(body, "zstd, gzip", 64 * 1024, max_decoded=MB) == SMALL
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * MB
