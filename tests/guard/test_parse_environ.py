"""``Scheme.parse_environ`` answers exactly as ``Scheme.parse`` of the same request's headers.

The WSGI lane reads the signature claim straight from the environ (GitHub's override skips the
header view for the form GitHub sends); whatever the headers hold, the claim, or the refusal, must
be the one the general path reads through :class:`~hmacguard.http.EnvironHeaders`.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hmacguard.http import EnvironHeaders
from hmacguard.schemes import SCHEME_NAMES, get_scheme

HEX = "0123456789abcdefABCDEF"
GOOD = "sha256=" + "ab" * 32

#: Values an X-Hub-Signature-256 header may hold: the sent form, and its near misses.
signature_values = st.one_of(
    st.just(GOOD),
    st.builds(lambda digits: "sha256=" + digits, st.text(HEX, min_size=62, max_size=66)),
    st.builds(lambda pad, v: pad + v + pad, st.sampled_from([" ", "\t", ""]), st.just(GOOD)),
    st.sampled_from(["", " ", "sha256=", "SHA256=" + "ab" * 32, "sha1=" + "ab" * 20, GOOD[:-2] + " a"]),
    st.builds(
        lambda v, i, c: v[:i] + c + v[i + 1 :], st.just(GOOD), st.integers(7, 70), st.sampled_from("g ,\x00é")
    ),
    st.text(max_size=80),
)
delivery_values = st.one_of(st.none(), st.just(""), st.just("  "), st.text(max_size=40))


def outcome(parse: Any, environ: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("claim", parse(environ))
    except Exception as error:  # the same refusal (type and words), or the same failure
        return (type(error).__name__, str(error))


@settings(max_examples=400, deadline=None)
@given(signature=st.one_of(st.none(), signature_values), delivery=delivery_values)
@example(signature=GOOD, delivery=None)
@example(signature=GOOD, delivery=" 72d3162e-cc78-11e3-81ab-4c9367dc0958 ")
@example(signature=" " + GOOD, delivery="")
@example(signature="sha256=" + "ab" * 31 + " a", delivery=None)
def test_github_parse_environ_is_parse_of_the_environ(signature: str | None, delivery: str | None) -> None:
    scheme = get_scheme("github")
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST"}
    if signature is not None:
        environ["HTTP_X_HUB_SIGNATURE_256"] = signature
    if delivery is not None:
        environ["HTTP_X_GITHUB_DELIVERY"] = delivery
    fast = outcome(scheme.parse_environ, environ)
    assert fast == outcome(lambda e: scheme.parse(EnvironHeaders(e)), environ)


@pytest.mark.parametrize("value", [b"sha256=" + b"ab" * 32, 42])
def test_github_header_that_is_not_text_fails_as_parse_does(value: object) -> None:
    # A server breaking PEP 3333 (a header value that is not a str): the same failure either way.
    scheme = get_scheme("github")
    environ = {"HTTP_X_HUB_SIGNATURE_256": value, "HTTP_X_GITHUB_DELIVERY": value}
    general = outcome(lambda e: scheme.parse(EnvironHeaders(e)), environ)
    assert outcome(scheme.parse_environ, environ) == general


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_every_scheme_reads_a_signed_environ_as_its_headers(name: str) -> None:
    from hmacguard import Signer

    scheme = get_scheme(name)
    headers = Signer(name, secrets="whsec_" + "c2VjcmV0c2VjcmV0c2VjcmV0").sign(b'{"ok": true}')
    environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    fast = outcome(scheme.parse_environ, environ)
    assert fast[0] == "claim"
    assert fast == outcome(lambda e: scheme.parse(EnvironHeaders(e)), environ)
