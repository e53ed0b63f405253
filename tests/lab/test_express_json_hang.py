"""The seed's Express "fix" never answers a JSON request: the parser has consumed the stream."""

from __future__ import annotations

import http.client

import pytest

from hmacguard.lab import run_target
from hmacguard.schemes import sign_body

pytestmark = pytest.mark.slow


def test_small_json_request_gets_no_answer() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    with run_target("express-json-limit") as t:
        headers = sign_body(t.scheme, t.secret, body)  # application/json, as GitHub sends
        conn = http.client.HTTPConnection(t.host, t.port, timeout=2)
        conn.request("POST", t.path, body=body, headers=headers)
        with pytest.raises(TimeoutError):
            conn.getresponse()
        conn.close()
