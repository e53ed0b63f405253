"""Metrics that tell two receivers of one scheme apart: the sinks' ``receiver`` name.

Two GitHub organisations behind one receiver (``_apps/receivers_guarded.py``), each with its own
secret -- A in the middle of a rotation, B not -- report decisions whose ``scheme`` is ``github``
for both. An SRE asks which organisation's deliveries fail, and which one's senders still sign with
the old secret: ``PrometheusMetrics(receiver=...)`` and ``OpenTelemetryMetrics(receiver=...)`` put
the name on every series. Checked with exact counts in-process (both sinks, the OpenTelemetry SDK's
in-memory reader) and under gunicorn with two workers in multiprocess mode; the default (no name)
keeps every series as it was; a bad name is refused at start-up; and two OpenTelemetry sinks on one
meter provider share their instruments, so the second guard's non-current-secret gauge is observed
(the SDK kept only the first gauge's callback before).
"""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hmacguard import ConfigurationError, OpenTelemetryMetrics, PrometheusMetrics, Signer, Verifier, WSGIGuard

from ._apps.receivers_guarded import A_OLD_SECRET, A_SECRET, B_SECRET, receiver, stack
from ._inprocess import wsgi_request
from ._metrics import otel_points
from ._servers import Server, gunicorn

serial = itertools.count()
SIGNERS = {
    "a-new": Signer("github", secrets=A_SECRET),
    "a-old": Signer("github", secrets=A_OLD_SECRET),
    "b": Signer("github", secrets=B_SECRET),
}
PATHS = {"a-new": "/hooks/org-a", "a-old": "/hooks/org-a", "b": "/hooks/org-b"}
RECEIVER = {"/hooks/org-a": "org-a", "/hooks/org-b": "org-b"}


def _mix() -> list[tuple[str, bytes, dict[str, str], int]]:
    """(path, body, headers, status expected): A 3 accepted (2 with the old secret) and 1 signed with
    B's secret; B 2 accepted, 1 replay, 2 signed with A's secrets."""
    out = []

    def send(signer: str, path: str, status: int, body: bytes | None = None) -> bytes:
        body = body if body is not None else b'{"n": %d}' % next(serial)
        out.append((path, body, SIGNERS[signer].sign(body), status))
        return body

    send("a-new", "/hooks/org-a", 200)
    send("a-old", "/hooks/org-a", 200)
    send("a-old", "/hooks/org-a", 200)
    send("b", "/hooks/org-a", 401)
    first = send("b", "/hooks/org-b", 200)
    send("b", "/hooks/org-b", 200)
    send("b", "/hooks/org-b", 409, body=first)
    send("a-new", "/hooks/org-b", 401)
    send("a-old", "/hooks/org-b", 401)
    return out


#: What the mix must be reported as: (receiver, outcome) -> count, and (receiver, key index) -> count.
DECISIONS = Counter(
    {
        ("org-a", "accepted"): 3,
        ("org-a", "signature-mismatch"): 1,
        ("org-b", "accepted"): 2,
        ("org-b", "replay"): 1,
        ("org-b", "signature-mismatch"): 2,
    }
)
KEYS = Counter({("org-a", "0"): 1, ("org-a", "1"): 2, ("org-b", "0"): 2})


def _families(registry: CollectorRegistry) -> dict[str, list[Any]]:
    return {metric.name: metric.samples for metric in registry.collect()}


def _prometheus_counts(
    families: dict[str, list[Any]],
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    decisions = Counter(
        {
            (s.labels["receiver"], s.labels["outcome"]): int(s.value)
            for s in families["hmacguard_decisions"]
            if s.name.endswith("_total") and s.value
        }
    )
    keys = Counter(
        {
            (s.labels["receiver"], s.labels["key_index"]): int(s.value)
            for s in families["hmacguard_verified_with_key"]
            if s.name.endswith("_total") and s.value
        }
    )
    return decisions, keys


def _last_seen(samples: list[Any]) -> dict[str, float]:
    return {s.labels["receiver"]: s.value for s in samples}


def test_two_organisations_on_one_scheme_are_told_apart_in_process() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = stack(
        receiver,
        lambda name: [
            PrometheusMetrics(registry=registry, receiver=name),
            OpenTelemetryMetrics(meter_provider=provider, receiver=name),
        ],
    )
    for path, body, headers, status in _mix():
        assert wsgi_request(app, body, headers, path=path).status == status, path

    families = _families(registry)
    assert _prometheus_counts(families) == (DECISIONS, KEYS)
    last_seen = _last_seen(families["hmacguard_noncurrent_secret_last_seen_timestamp_seconds"])
    assert last_seen["org-a"] > 1_700_000_000 and last_seen["org-b"] == 0  # only A still rotates
    # The other series carry the name too.
    assert {s.labels["receiver"] for s in families["hmacguard_body_bytes"]} == {"org-a", "org-b"}

    points = otel_points(reader)
    decisions = Counter(
        {(p.attributes["receiver"], p.attributes["outcome"]): p.value for p in points["hmacguard.decisions"]}
    )
    assert decisions == DECISIONS
    keys = Counter(
        {
            (p.attributes["receiver"], p.attributes["key_index"]): p.value
            for p in points["hmacguard.verified_with_key"]
        }
    )
    assert keys == KEYS
    gauge = {p.attributes["receiver"]: p.value for p in points["hmacguard.noncurrent_secret.last_seen"]}
    assert gauge["org-a"] > 1_700_000_000 and gauge["org-b"] == 0
    counts: Counter[str] = Counter()
    for point in points["hmacguard.body.bytes"]:  # a point per outcome and receiver
        counts[point.attributes["receiver"]] += point.count
    assert counts == {"org-a": 4, "org-b": 5}


def test_without_a_name_the_series_stay_as_they_were() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = WSGIGuard(
        receiver,
        verifier=Verifier("github", secrets=[A_SECRET, A_OLD_SECRET]),
        on_decision=[PrometheusMetrics(registry=registry), OpenTelemetryMetrics(meter_provider=provider)],
    )
    body = b'{"n": %d}' % next(serial)
    assert wsgi_request(app, body, SIGNERS["a-old"].sign(body)).status == 200
    # Prometheus: the label is there, empty -- in PromQL the same as no label.
    value = registry.get_sample_value(
        "hmacguard_decisions_total", {"outcome": "accepted", "scheme": "github", "receiver": ""}
    )
    assert value == 1
    # OpenTelemetry: no receiver attribute at all, on any point.
    points = otel_points(reader)
    assert [dict(p.attributes) for p in points["hmacguard.decisions"]] == [
        {"outcome": "accepted", "scheme": "github"}
    ]
    assert [dict(p.attributes or {}) for p in points["hmacguard.noncurrent_secret.last_seen"]] == [{}]
    assert all("receiver" not in (p.attributes or {}) for found in points.values() for p in found)


def test_a_second_opentelemetry_sink_on_one_provider_is_observed() -> None:
    """Two guards, an OpenTelemetryMetrics each, no names: only the second sees an old secret. The SDK
    keeps one observable gauge per name, and its first callback only: the second sink's reading was
    never observed before the sinks shared their instruments."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = stack(receiver, lambda name: OpenTelemetryMetrics(meter_provider=provider))
    body = b'{"n": %d}' % next(serial)
    assert wsgi_request(app, body, SIGNERS["b"].sign(body), path="/hooks/org-b").status == 200
    body = b'{"n": %d}' % next(serial)
    assert wsgi_request(app, body, SIGNERS["a-old"].sign(body), path="/hooks/org-a").status == 200
    points = otel_points(reader)
    (gauge,) = points["hmacguard.noncurrent_secret.last_seen"]
    assert gauge.value > 1_700_000_000
    assert sum(p.value for p in points["hmacguard.decisions"]) == 2


@pytest.mark.parametrize(
    "name",
    [None, 7, b"org-a", "x" * 65, "org\na", "org-ä", "org\x00a"],
    ids=["none", "int", "bytes", "too-long", "newline", "non-ascii", "nul"],
)
def test_a_bad_receiver_name_is_refused_at_start_up(name: Any) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    with pytest.raises(ConfigurationError, match="receiver must be"):
        PrometheusMetrics(registry=CollectorRegistry(), receiver=name)
    with pytest.raises(ConfigurationError, match="receiver must be"):
        OpenTelemetryMetrics(meter_provider=MeterProvider(), receiver=name)


def test_the_longest_name_and_spaces_are_taken() -> None:
    registry = CollectorRegistry()
    PrometheusMetrics(registry=registry, receiver="x" * 64)
    PrometheusMetrics(registry=registry, receiver="GitHub org A (billing)")


def _post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        server.base_url + path, content=body, headers={**headers, "X-Test-Hold": "0.2"}, timeout=20
    )


@pytest.mark.slow
def test_two_organisations_are_told_apart_under_gunicorn_workers(multiprocess_dir: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    # Without the replay: each worker has its own in-memory replay store (a replay reaching the
    # other worker passes; Redis shares them, tests/guard/test_redis_*.py).
    mix = [request for request in _mix() if request[3] != 409]
    env = {"PROMETHEUS_MULTIPROC_DIR": multiprocess_dir}
    with gunicorn("tests.guard._apps.receivers_guarded:application", env, workers=2) as server:
        with ThreadPoolExecutor(3) as pool:  # at once, each held a moment: both workers answer
            answers = list(pool.map(lambda d: _post(server, d[0], d[1], d[2]), mix))
        assert [a.status_code for a in answers] == [status for *_, status in mix]
        pids = {a.text.split("pid=")[1] for a in answers if a.status_code == 200}
        assert len(pids) == 2, "both workers answered"
        text = httpx.get(server.base_url + "/metrics", timeout=10).text
        assert "Traceback" not in server.log()
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    assert _prometheus_counts(families) == (DECISIONS - Counter({("org-b", "replay"): 1}), KEYS)
    last_seen = _last_seen(families["hmacguard_noncurrent_secret_last_seen_timestamp_seconds"])
    assert set(last_seen) == {"org-a", "org-b"}  # one series per receiver, none per worker pid
    assert last_seen["org-a"] > 1_700_000_000 and last_seen["org-b"] == 0
