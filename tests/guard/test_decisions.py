"""Decisions you can watch: the log record, the on_decision hook, Prometheus and OpenTelemetry.

The metrics tests send a known mix -- accepted, 401, 409, 413 and 429 -- and find exactly those
counts: scraped from a real guarded app's Prometheus endpoint under gunicorn, and read from the
OpenTelemetry SDK's in-memory reader in-process.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import httpx
import pytest

from hmacguard import (
    Decision,
    OpenTelemetryMetrics,
    PrometheusMetrics,
    RateLimiter,
    Signer,
    Verifier,
    WSGIGuard,
)

from ._apps.metrics_guarded import SECRET
from ._inprocess import wsgi_request
from ._metrics import otel_points
from ._servers import gunicorn

# The mix: (what to send, how many) -> the outcome each must have.
MIX = {"accepted": 5, "signature-mismatch": 3, "replay": 2, "body-too-large": 2, "rate-limited": 4}
LIMIT = sum(n for outcome, n in MIX.items() if outcome != "rate-limited")
signer = Signer("github", secrets=SECRET)
old_signer = Signer("github", secrets="an-older-secret")


def _requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """(expected outcome, body, headers) in the order they are sent."""
    out = []
    first = b'{"delivery": 0}'
    for i in range(MIX["accepted"]):
        body = b'{"delivery": %d}' % i
        sign = old_signer if i == MIX["accepted"] - 1 else signer  # one sender still on the old secret
        out.append(("accepted", body, sign.sign(body)))
    for _ in range(MIX["signature-mismatch"]):
        out.append(("signature-mismatch", b"{}", {"X-Hub-Signature-256": "sha256=" + "0" * 64}))
    for _ in range(MIX["replay"]):
        out.append(("replay", first, signer.sign(first)))
    for _ in range(MIX["body-too-large"]):
        big = b"x" * (64 * 1024 + 1)
        out.append(("body-too-large", big, signer.sign(big)))
    for i in range(MIX["rate-limited"]):
        body = b'{"late": %d}' % i
        out.append(("rate-limited", body, signer.sign(body)))
    return out


STATUS = {
    "accepted": 200,
    "signature-mismatch": 401,
    "replay": 409,
    "body-too-large": 413,
    "rate-limited": 429,
}


@pytest.mark.slow
def test_prometheus_counts_exactly_the_mix_sent_to_a_real_server() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    env = {"HMACGUARD_TEST_RATE": f"{LIMIT}/hour"}
    app = "tests.guard._apps.metrics_guarded:application"
    with (
        gunicorn(app, env, workers=1) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as client,
    ):
        for outcome, body, headers in _requests():
            status = client.post("/webhook", content=body, headers=headers).status_code
            assert status == STATUS[outcome], (outcome, status)
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    decisions = Counter(
        {
            s.labels["outcome"]: int(s.value)
            for s in families["hmacguard_decisions"].samples
            if s.name.endswith("_total")
        }
    )
    assert decisions == Counter(MIX)
    histogram = {
        s.labels["outcome"]: int(s.value)
        for s in families["hmacguard_body_bytes"].samples
        if s.name.endswith("_count")
    }
    assert histogram == MIX
    keys = {
        s.labels["key_index"]: int(s.value)
        for s in families["hmacguard_verified_with_key"].samples
        if s.name.endswith("_total")
    }
    assert keys == {"0": MIX["accepted"] - 1, "1": 1}
    last_seen = families["hmacguard_noncurrent_secret_last_seen_timestamp_seconds"].samples[0].value
    assert last_seen > 1_700_000_000


def test_opentelemetry_sees_the_same_mix() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = _inprocess_guard(OpenTelemetryMetrics(meter_provider=provider))
    for outcome, body, headers in _requests():
        assert wsgi_request(app, body, headers).status == STATUS[outcome]
    points = otel_points(reader)
    decisions = Counter({p.attributes["outcome"]: p.value for p in points["hmacguard.decisions"]})
    assert decisions == Counter(MIX)
    counts = {p.attributes["outcome"]: p.count for p in points["hmacguard.body.bytes"]}
    assert counts == MIX
    assert {p.attributes["key_index"]: p.value for p in points["hmacguard.verified_with_key"]} == {
        "0": 4,
        "1": 1,
    }
    assert points["hmacguard.noncurrent_secret.last_seen"][0].value > 1_700_000_000


def _inprocess_guard(*sinks: Any) -> WSGIGuard:
    def ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"ok"]

    return WSGIGuard(
        ok,
        verifier=Verifier("github", secrets=[SECRET, "an-older-secret"], max_body=64 * 1024),
        rate_limiter=RateLimiter(limit=f"{LIMIT}/hour"),
        on_decision=list(sinks),
    )


def test_one_debug_record_per_decision_with_the_fields_and_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Decision] = []
    app = _inprocess_guard(seen.append)
    with caplog.at_level(logging.DEBUG, logger="hmacguard"):
        for _, body, headers in _requests():
            wsgi_request(app, body, headers)
    records = [r for r in caplog.records if r.name == "hmacguard"]
    assert len(records) == len(seen) == sum(MIX.values())
    assert Counter(r.outcome for r in records) == Counter(MIX)  # type: ignore[attr-defined]
    for record, decision in zip(records, seen):
        fields = {
            k: getattr(record, k)
            for k in (
                "outcome", "status", "scheme", "path", "client", "bytes_read", "key_index", "duration",
                "failed_open",
            )
        }  # fmt: skip
        assert fields == decision.to_dict()
        text = record.getMessage() + repr(vars(record))
        assert SECRET not in text and "sha256=" not in text and "delivery" not in text
    first = seen[0]
    assert first.accepted and first.status is None and first.key_index == 0 and first.bytes_read > 0
    assert first.client == "ip:127.0.0.1" and first.path == "/webhook" and first.duration > 0
    too_large = next(d for d in seen if d.outcome == "body-too-large")
    assert too_large.status == 413 and too_large.bytes_read == 0  # refused before a body byte


def test_a_failing_sink_never_changes_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    def broken(decision: Decision) -> None:
        raise RuntimeError("metrics backend down")

    app = _inprocess_guard(broken)
    body = b'{"n": 1}'
    with caplog.at_level(logging.WARNING, logger="hmacguard"):
        assert wsgi_request(app, body, signer.sign(body)).status == 200
        assert wsgi_request(app, b"{}", {}).status == 400
    assert len([r for r in caplog.records if "sink" in r.getMessage()]) == 1  # once per error type


def test_nothing_is_built_when_nobody_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmacguard.guard.policy as policy

    def no(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decision was built")

    monkeypatch.setattr(policy, "Decision", no)
    logging.getLogger("hmacguard").setLevel(logging.INFO)
    app = _inprocess_guard()
    body = b'{"n": 2}'
    assert wsgi_request(app, body, signer.sign(body)).status == 200
    logging.getLogger("hmacguard").setLevel(logging.NOTSET)


def test_prometheus_metrics_built_twice_share_one_set() -> None:
    """A receiver with a guard per provider builds PrometheusMetrics once per guard: on one registry
    (and prefix) they share the metrics instead of failing on prometheus-client's duplicate names."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    first, second = PrometheusMetrics(registry=registry), PrometheusMetrics(registry=registry)
    assert first.decisions is second.decisions
    assert PrometheusMetrics(registry=registry, prefix="other").decisions is not first.decisions
    assert PrometheusMetrics(registry=CollectorRegistry()).decisions is not first.decisions
