"""The Redis keys of an in-flight count: one Cluster slot per count, and never one count for two
client keys (a client's key can hold any character, braces included)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hmacguard.guard.limit_stores import in_flight_keys

NAMES = st.text(alphabet=st.sampled_from("{}()%7BDa/:"), max_size=12)


@given(first=NAMES, second=NAMES)
def test_two_names_never_share_keys(first: str, second: str) -> None:
    if first != second:
        assert set(in_flight_keys(first)).isdisjoint(in_flight_keys(second))


@given(name=NAMES)
def test_both_keys_hash_on_one_tag_that_is_the_whole_name(name: str) -> None:
    """Redis Cluster hashes the text between the first ``{`` and the next ``}``: for both keys that
    must be the same text, and all of the (encoded) name -- no brace of the name inside it."""
    tags = set()
    for key in in_flight_keys(name):
        start = key.index("{")
        end = key.index("}", start + 1)
        tags.add(key[start + 1 : end])
        assert key.startswith("{") and key[end + 1 :] in ("/total", "/leases")
    assert len(tags) == 1
    assert "{" not in tags.pop()


def test_a_brace_and_a_parenthesis_are_two_clients() -> None:
    """Was: braces became parentheses, so the client ``a{b`` counted with ``a(b``."""
    assert in_flight_keys("hmacguard/in-flight-bytes/a{b") != in_flight_keys("hmacguard/in-flight-bytes/a(b")
