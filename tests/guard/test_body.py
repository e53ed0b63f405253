"""BoundedBody, Content-Length parsing and the capped gzip inflater."""

from __future__ import annotations

import gzip
import io
import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmacguard.errors import BadRequest, BodyTooLarge, UnsupportedEncoding
from hmacguard.guard.body import (
    BoundedBody,
    GzipInflater,
    content_coding,
    parse_content_length,
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000).map(lambda b: b.replace(b"\x00", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
    threshold=st.sampled_from([0, 10, 1000, 10_000]),
    ops=st.lists(st.tuples(st.sampled_from(["read", "readline", "seek"]), st.integers(-1, 400)), max_size=20),
)
def test_reads_match_bytesio_for_any_chunking(
    data: bytes, cuts: list[int], threshold: int, ops: list[tuple[str, int]]
) -> None:
    body = BoundedBody(limit=len(data) + 1, spool_threshold=threshold)
    for chunk in split(data, cuts):
        body.append(chunk)
    body.seal()
    reference = io.BytesIO(data)
    assert body.size == len(data)
    assert body.spooled == (len(data) > threshold)
    for op, n in ops:
        if op == "read":
            assert body.read(n) == reference.read(n)
        elif op == "readline":
            assert body.readline(n) == reference.readline(n)
        else:
            target = abs(n)
            assert body.seek(target) == reference.seek(target)
        assert body.tell() == reference.tell()
    body.seek(0)
    assert b"".join(body) == data
    assert body.getvalue() == data
    body.close()
    assert body.closed


def test_the_chunk_that_passes_the_cap_is_refused_and_not_kept() -> None:
    body = BoundedBody(limit=10, spool_threshold=4)
    body.append(b"12345678")
    with pytest.raises(BodyTooLarge) as info:
        body.append(b"abc")
    assert info.value.limit == 10
    assert body.size == 8
    body.close()


def test_iteration_yields_bounded_lines_for_a_body_without_newlines() -> None:
    body = BoundedBody(limit=300_000)
    body.append(b"x" * 200_000)
    body.seal()
    lines = list(body)
    assert b"".join(lines) == b"x" * 200_000
    assert max(len(line) for line in lines) <= 64 * 1024
    body.close()


def test_a_spooled_body_lives_in_a_file_that_close_deletes() -> None:
    body = BoundedBody(limit=1 << 20, spool_threshold=1024)
    body.append(os.urandom(4096))
    assert body.spooled
    file = body._file
    assert file is not None
    body.close()
    assert file.closed


def test_bytearray_chunks_are_copied_because_callers_reuse_buffers() -> None:
    buffer = bytearray(b"abc")
    body = BoundedBody(limit=10)
    body.append(buffer)
    buffer[:] = b"xyz"
    body.seal()
    assert body.read() == b"abc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("0", 0), ("17", 17), ("5, 5", 5), (" 12 ", 12)],
)
def test_content_length_accepted(value: str | None, expected: int | None) -> None:
    assert parse_content_length(value) == expected


@pytest.mark.parametrize("value", ["", "-1", "+5", "5_0", "1e3", "0x10", "٣", "5, 6", "1" * 20, "12a", " "])
def test_content_length_refused(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_content_length(value)


def test_content_coding() -> None:
    assert content_coding(None, allow_gzip=True) is None
    assert content_coding("identity", allow_gzip=True) is None
    assert content_coding("gzip", allow_gzip=True) == "gzip"
    assert content_coding("X-GZIP", allow_gzip=True) == "gzip"
    for refused in ("br", "deflate", "gzip, gzip", "compress"):
        with pytest.raises(UnsupportedEncoding):
            content_coding(refused, allow_gzip=True)
    with pytest.raises(UnsupportedEncoding):
        content_coding("gzip", allow_gzip=False)


def inflate_all(data: bytes, limit: int, chunk: int = 1000) -> bytes:
    inflater = GzipInflater(limit=limit)
    out = [p for i in range(0, len(data), chunk) for p in inflater.feed(data[i : i + chunk])]
    out.extend(inflater.finish())
    return b"".join(out)


def test_gzip_round_trip_in_small_chunks() -> None:
    payload = os.urandom(50_000) + b"a" * 50_000
    assert inflate_all(gzip.compress(payload), limit=len(payload)) == payload


def test_gzip_bomb_stops_just_past_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    inflater = GzipInflater(limit=1 << 20)
    produced = 0

    def inflate() -> None:
        nonlocal produced
        for i in range(0, len(bomb), 4096):
            for piece in inflater.feed(bomb[i : i + 4096]):
                produced += len(piece)

    with pytest.raises(BodyTooLarge):
        inflate()
    assert produced <= 1 << 20
    assert inflater.produced <= (1 << 20) + 1


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(b"hello", mtime=0)[:-6], gzip.compress(b"a", mtime=0) + b"trailing"],
)
def test_gzip_corrupt_truncated_or_trailing_is_a_400(data: bytes) -> None:
    with pytest.raises(BadRequest):
        inflate_all(data, limit=1000)
