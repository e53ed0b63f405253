"""Probe bodies: exact sizes, valid for their content type, deterministic, never whole in memory."""

from __future__ import annotations

import gzip
import json
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hmacguard.scan.bodies import BLOCK, BodySpec, Shape, shape_for

shapes = st.sampled_from(list(Shape))
tags = st.text(alphabet="0123456789abcdef", max_size=12)


def whole(spec: BodySpec, *, raw: bool = False) -> bytes:
    return b"".join(bytes(c) for c in (spec.raw_chunks() if raw else spec.chunks()))


@given(shape=shapes, size=st.integers(0, 3 * BLOCK + 17), tag=tags)
def test_exact_size_deterministic_and_in_bounded_pieces(shape: Shape, size: int, tag: str) -> None:
    spec = BodySpec(shape, size, tag=tag)
    first = whole(spec)
    assert len(first) == size == spec.wire_length
    assert whole(spec) == first  # a signed probe hashes one pass and sends another
    assert all(len(c) <= BLOCK + 64 for c in spec.chunks())
    assert b"\n" not in first  # one "line" as long as the body, as an attacker would send


@given(size=st.integers(0, 100_000), tag=tags)
@settings(max_examples=60)
def test_json_and_form_bodies_are_valid(size: int, tag: str) -> None:
    if size >= 1:
        json.loads(whole(BodySpec(Shape.JSON, size, tag=tag)))
    form = whole(BodySpec(Shape.FORM, size, tag=tag)).decode()
    if size >= len("hmacguard_probe=") + len(tag):
        assert urllib.parse.parse_qs(form, keep_blank_values=True)["hmacguard_probe"][0].startswith(tag)


def test_tag_makes_bodies_unique_at_the_same_size() -> None:
    a = whole(BodySpec(Shape.JSON, 4096, tag="aa01"))
    b = whole(BodySpec(Shape.JSON, 4096, tag="aa02"))
    assert a != b and len(a) == len(b) == 4096


@pytest.mark.parametrize("shape", list(Shape))
def test_gzip_is_small_on_the_wire_and_inflates_to_the_raw_body(shape: Shape) -> None:
    spec = BodySpec(shape, 8 * 1024 * 1024, gzip=True, tag="t1")
    wire = whole(spec)
    assert len(wire) == spec.wire_length
    assert gzip.decompress(wire) == whole(spec, raw=True)
    if shape is not Shape.OCTET:  # octet-stream is incompressible on purpose
        assert len(wire) * 500 < spec.size


def test_large_body_is_generated_not_held() -> None:
    import tracemalloc

    tracemalloc.start()
    total = sum(len(c) for c in BodySpec(Shape.JSON, 256 * 1024 * 1024).chunks())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == 256 * 1024 * 1024
    assert peak < 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("content_type", "shape"),
    [
        ("application/json", Shape.JSON),
        ("application/vnd.github+json; charset=utf-8", Shape.JSON),
        ("application/x-www-form-urlencoded", Shape.FORM),
        ("text/plain; charset=utf-8", Shape.TEXT),
        ("application/octet-stream", Shape.OCTET),
        ("image/png", Shape.OCTET),
    ],
)
def test_shape_for_content_type(content_type: str, shape: Shape) -> None:
    assert shape_for(content_type) is shape


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError):
        BodySpec(Shape.JSON, -1)
    with pytest.raises(ValueError):
        BodySpec(Shape.JSON, 10, tag='"; drop')
