"""Analysis rules, score, fingerprint and rate-limit headers on constructed measurements: the edge
cases the lab does not cover (and regressions the lab once showed)."""

from __future__ import annotations

import itertools

import pytest

from hmacguard.findings import RULES, Category, Evidence, Finding, Location, Severity
from hmacguard.scan.analysis import ScanFacts, Thresholds, analyse
from hmacguard.scan.model import (
    BurstResult,
    Measurement,
    Refusal,
    RetentionResult,
    Stack,
    Variant,
    Verdict,
)
from hmacguard.scan.probes.ratelimit import advertised_allowance
from hmacguard.scan.rules import SCAN_RULE_IDS, SCAN_RULES, ScanRule, scan_rule
from hmacguard.scan.score import grade, score
from hmacguard.scan.stack import identify_stack as fingerprint
from hmacguard.scan.stack import stack_hint
from hmacguard.scan.wire import Exchange, Framing, Outcome

KiB, MiB = 1024, 1024 * 1024
JSON = Variant()
CHUNKED = Variant(Framing.CHUNKED)
TEXT = Variant(Framing.CONTENT_LENGTH, "text/plain")
UNCERTAINTY = 256 * KiB


def probe(variant: Variant, size: int, verdict: Verdict, *, status: int | None = 401,
          sent_at: int | None = None, refusal: Refusal | None = None, phase: str = "ladder",
          rss: tuple[int, int] | None = None,
          headers: tuple[tuple[str, str], ...] = ()) -> Measurement:  # fmt: skip
    answered = status is not None
    sent = size if sent_at is None else sent_at
    ex = Exchange(
        Outcome.RESPONSE if answered else Outcome.TIMEOUT, size, body_sent=sent,
        sent_at_response=sent if answered else None,
        body_complete=sent_at is None, status=status, headers=headers, total_s=0.05, uncertainty=UNCERTAINTY,
    )  # fmt: skip
    before, peak = rss if rss else (None, None)
    return Measurement(phase, variant, size, size, ex, verdict, refusal, before, peak, peak)


def facts(*ms: Measurement, retention: RetentionResult | None = None, burst: BurstResult | None = None,
          unavailable: str | None = None, stack: Stack = Stack()) -> ScanFacts:  # fmt: skip
    return ScanFacts("http://127.0.0.1:1/webhook", "POST", JSON, ms, (), retention, burst, unavailable, stack)


def found(f: ScanFacts) -> set[str]:
    findings, diagnostics = analyse(f)
    assert not diagnostics
    return {x.rule for x in findings}


A, R, N = Verdict.ACCEPTED, Verdict.REFUSED, Verdict.NO_ANSWER
STATUS, EARLY = Refusal.STATUS, Refusal.EARLY


def test_every_scan_rule_has_a_check_and_the_catalogue_entry() -> None:
    assert list(SCAN_RULES) == list(SCAN_RULE_IDS)
    assert all(RULES[rule].source == "scan" and RULES[rule].doc for rule in SCAN_RULE_IDS)


def test_a_rule_is_validated_when_it_registers() -> None:
    from hmacguard.errors import ConfigurationError

    def check(facts: ScanFacts, th: Thresholds) -> None:
        return None

    common = {"title": "t", "category": Category.AVAILABILITY, "severity": Severity.LOW, "cwe": (400,),
              "remediation": "r"}  # fmt: skip
    with pytest.raises(ConfigurationError, match="unknown phase"):
        scan_rule(id="test-rule", phases=("warp",), **common)  # type: ignore[arg-type]
    # This test module's docstring lacks the three sections every rule's documentation needs.
    with pytest.raises(ConfigurationError, match="How it is judged"):
        scan_rule(id="test-rule", phases=("ladder",), **common)(check)  # type: ignore[arg-type]
    assert "test-rule" not in RULES


def test_unbounded_versus_high_limit_versus_a_sane_limit() -> None:
    ladder = [probe(JSON, KiB, A), probe(JSON, MiB, A), probe(JSON, 10 * MiB, A)]
    assert found(facts(*ladder, probe(JSON, 100 * MiB, A))) == {"unbounded-body"}
    high = facts(*ladder, probe(JSON, 100 * MiB, R, status=413, sent_at=KiB, refusal=STATUS))
    assert found(high) == {"high-limit"}
    sane = facts(ladder[0], ladder[1], probe(JSON, 10 * MiB, R, status=413, sent_at=KiB, refusal=STATUS))
    assert found(sane) == set()


def test_small_ladder_cannot_call_a_body_unbounded() -> None:
    # Accepting 4 MiB (all the budget allowed) is not "abnormally large".
    assert found(facts(probe(JSON, KiB, A), probe(JSON, 4 * MiB, A))) == set()


def test_chunked_bypass_needs_chunked_to_pass_the_content_length_limit() -> None:
    cl = [probe(JSON, KiB, A), probe(JSON, 10 * MiB, R, status=413, sent_at=KiB, refusal=STATUS)]
    bypass = [probe(CHUNKED, KiB, A, phase="chunked"), probe(CHUNKED, 100 * MiB, A, phase="chunked")]
    assert found(facts(*cl, *bypass)) == {"chunked-bypass"}
    # Chunked refused harder than Content-Length (Django answers without reading): no bypass.
    stricter = [probe(CHUNKED, KiB, A, phase="chunked"),
                probe(CHUNKED, MiB, R, sent_at=300 * KiB, refusal=EARLY, phase="chunked")]  # fmt: skip
    assert found(facts(*cl, *stricter)) == set()


def test_content_type_filter_is_not_a_size_bypass() -> None:
    cl = [probe(JSON, KiB, A), probe(JSON, 10 * MiB, R, status=413, sent_at=KiB, refusal=STATUS)]
    # text/plain refused at every size (415): a type filter, and JSON's limit is not bypassed by it.
    filtered = [probe(TEXT, KiB, R, status=415, refusal=STATUS, phase="content-type")]
    assert found(facts(*cl, *filtered)) == set()
    bypass = [probe(TEXT, KiB, A, phase="content-type"), probe(TEXT, 100 * MiB, A, phase="content-type")]
    assert found(facts(*cl, *bypass)) == {"content-type-bypass"}
    # Accepted up to the very size JSON is refused at: one limit seen twice, not a bypass.
    same = [probe(TEXT, KiB, A, phase="content-type"), probe(TEXT, 10 * MiB, A, phase="content-type")]
    assert found(facts(*cl, *same)) == set()


def test_a_refusal_before_any_body_byte_is_read_is_no_size_limit() -> None:
    # express-json-only: JSON read under a 1 MiB cap (413 before reading a larger one); every other
    # type 403 at once. 1 KiB of text fits in the socket buffers, so its 403 looks "accepted"; at
    # 1 MiB the same 403 comes before anything could be read: a type filter, not a limit.
    json = [probe(JSON, KiB, A), probe(JSON, MiB, A),
            probe(JSON, 16 * MiB, R, status=413, sent_at=192 * KiB, refusal=STATUS)]  # fmt: skip
    text = [
        probe(TEXT, KiB, A, status=403, phase="content-type"),
        probe(TEXT, MiB, R, status=403, sent_at=192 * KiB, refusal=EARLY, phase="content-type"),
    ]
    assert found(facts(*json, *text)) == set()
    # The same early answer after the server read well past the buffers is a limit (it stopped at a
    # cap), and JSON read at 16 MiB is past it.
    capped = [
        probe(TEXT, KiB, A, status=403, phase="content-type"),
        probe(TEXT, 4 * MiB, R, status=403, sent_at=MiB + UNCERTAINTY, refusal=EARLY, phase="content-type"),
    ]
    unbounded_json = [probe(JSON, KiB, A), probe(JSON, 16 * MiB, A)]
    assert "content-type-bypass" in found(facts(*unbounded_json, *capped))


def test_late_rejection_is_judged_on_the_largest_refused_body_only() -> None:
    # Near a streaming cap the body fits in the socket buffers and looks "read" whatever happens.
    near_cap = probe(CHUNKED, int(1.1 * MiB), R, status=413, refusal=STATUS, phase="bisect")
    far = probe(CHUNKED, 16 * MiB, R, status=413, sent_at=MiB + 600 * KiB, refusal=STATUS, phase="chunked")
    assert found(facts(probe(CHUNKED, MiB, A, phase="chunked"), far, near_cap)) == set()
    read_all = probe(JSON, 16 * MiB, R, status=413, refusal=STATUS)
    assert found(facts(probe(JSON, MiB, A), read_all)) == {"late-rejection"}


def test_amplification_is_decided_on_large_bodies_only() -> None:
    warmup_noise = [probe(JSON, KiB, A, rss=(0, 16 * MiB)), probe(JSON, 4 * MiB, A, rss=(0, 12 * MiB))]
    assert found(facts(*warmup_noise)) == set()  # a cold worker's first requests, not buffering
    buffering = [*warmup_noise, probe(JSON, 64 * MiB, A, rss=(100 * MiB, 170 * MiB))]
    assert "memory-amplification" in found(facts(*buffering))
    streaming = [*warmup_noise, probe(JSON, 64 * MiB, A, rss=(100 * MiB, 115 * MiB))]
    assert "memory-amplification" not in found(facts(*streaming))
    inflating = probe(Variant(gzip=True), 64 * MiB, A, rss=(0, 60 * MiB), phase="gzip")
    assert "memory-amplification" in found(facts(inflating))


def retention(rss_mib: list[float], size: int = MiB) -> RetentionResult:
    import statistics

    from hmacguard._stats import slope

    rss = [int(x * MiB) for x in rss_mib]
    xs = [8 * i for i in range(len(rss))]
    half = len(rss) // 2
    median = statistics.median((b - a) / 8 for a, b in itertools.pairwise(rss))
    return RetentionResult(JSON, size, 16, 8, tuple(rss), slope(xs, rss), slope(xs[half:], rss[half:]),
                           median, 80, (401,) * 80)  # fmt: skip


@pytest.mark.parametrize(
    ("rss", "leak"),
    [
        ([100, 108, 116, 124, 132, 140, 148, 156, 164], True),  # a body kept per request
        ([100, 100, 100.1, 100, 100.2, 100.1, 100.1, 100.2, 100.1], False),  # stateless
        ([100, 108, 112, 113, 113, 113.5, 113, 113.2, 113.4], False),  # high-water mark reached
        ([74, 84, 82.6, 84.9, 87.8, 84.3, 88.3, 90.6, 87], False),  # a garbage collector's sawtooth
        ([77, 77, 77.1, 77.1, 77.2, 79.2, 81.2, 83.2, 83.2], False),  # one step of heap growth
    ],
    ids=["leak", "flat", "plateau", "sawtooth", "step"],
)
def test_retention_calls_only_continued_growth_a_leak(rss: list[float], leak: bool) -> None:
    assert ("memory-retention" in found(facts(retention=retention(rss)))) is leak


def burst(statuses: dict[str, int], *, throttled: int = 0, errors: int = 0, headers: tuple[str, ...] = (),
          latencies: tuple[float, ...] = (0.01,) * 20) -> BurstResult:  # fmt: skip
    return BurstResult(JSON, MiB, 20, 4, (0.01, 0.01, 0.01), latencies, statuses, throttled, errors, 0,
                       headers, None, 0.5)  # fmt: skip


def test_rate_limit_seen_in_the_burst_or_advertised_anywhere() -> None:
    assert found(facts(burst=burst({"401": 20}))) == {"no-rate-limit"}
    assert found(facts(burst=burst({"401": 10, "429": 10}, throttled=10))) == set()
    advertised = probe(JSON, KiB, A, headers=(("ratelimit-policy", '"default";q=100;w=60'),))
    assert found(facts(advertised, burst=burst({"401": 20}))) == set()


def test_degradation_from_burst_errors_latency_and_hangs() -> None:
    errors = found(facts(burst=burst({"401": 15, "502": 5}, errors=5)))
    assert errors == {"no-rate-limit", "degradation"}
    slow = facts(burst=burst({"401": 20}, latencies=(2.5,) * 20))
    (deg,) = [f for f in analyse(slow)[0] if f.rule == "degradation"]
    assert deg.severity is Severity.MEDIUM and "latency" in deg.message
    hung = facts(probe(JSON, KiB, N, status=None))
    assert found(hung) == {"degradation"}


def test_unavailable_target_is_critical_and_its_last_probe_is_not_double_counted() -> None:
    last = probe(JSON, 100 * MiB, Verdict.ERROR, status=None)
    f = facts(probe(JSON, KiB, A), last, unavailable="after ladder: content-length json 100 MiB (reset)")
    findings, _ = analyse(f)
    assert [x.rule for x in findings] == ["target-unavailable"]
    assert findings[0].severity is Severity.CRITICAL
    assert findings[0].evidence.values["preceding_probes"][-1]["size"] == 100 * MiB


def test_a_crashing_check_is_a_diagnostic_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(facts: ScanFacts, th: Thresholds) -> None:
        raise ZeroDivisionError("boom")

    rules = [r for r in SCAN_RULES.values() if r.id != "high-limit"]
    unbounded = SCAN_RULES["unbounded-body"]
    crashing = ScanRule(unbounded.rule, unbounded.phases, unbounded.needs_memory, broken)
    findings, diagnostics = analyse(
        facts(burst=burst({"401": 20})), rules=[crashing if r is unbounded else r for r in rules]
    )
    assert [f.rule for f in findings] == ["no-rate-limit"]
    assert diagnostics == ["check unbounded-body could not be evaluated: ZeroDivisionError: boom"]


def finding(rule: str, severity: Severity) -> Finding:
    return Finding(rule, severity, "m", Location(url="u"), Evidence("s"), "r")


@pytest.mark.parametrize(
    ("severities", "expected_score", "expected_grade"),
    [
        ([], 100, "A"),
        ([("no-rate-limit", Severity.MEDIUM)], 90, "A"),
        ([("unbounded-body", Severity.HIGH), ("no-rate-limit", Severity.MEDIUM)], 70, "C"),
        ([("unbounded-body", Severity.HIGH)] * 3, 80, "B"),  # one rule counts once
        ([("target-unavailable", Severity.CRITICAL)], 50, "F"),  # critical caps at 50
        ([(r, Severity.HIGH) for r in SCAN_RULE_IDS], 0, "F"),
    ],
)
def test_score_formula(severities, expected_score: int, expected_grade: str) -> None:
    value = score(finding(r, s) for r, s in severities)
    assert (value, grade(value)) == (expected_score, expected_grade)


def answered(status: int, body: bytes = b"", **headers: str) -> Exchange:
    return Exchange(Outcome.RESPONSE, 0, status=status, body_head=body,
                    headers=tuple((k.replace("_", "-").lower(), v) for k, v in headers.items()))  # fmt: skip


@pytest.mark.parametrize(
    ("exchange", "framework", "server"),
    [
        (answered(404, b"<h1>Not Found</h1><p>The requested resource was not found on this server.</p>",
                  server="gunicorn"), "Django", "gunicorn"),
        (answered(404, b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>"
                  b"<p>The requested URL was not found on the server.", server="gunicorn"),
         "Flask/Werkzeug", "gunicorn"),
        (answered(404, b'{"detail":"Not Found"}', server="uvicorn"), "FastAPI/Starlette", "uvicorn"),
        (answered(404, b"<pre>Cannot GET /x</pre>", x_powered_by="Express"), "Express", None),
        (answered(404, b"404: Not Found", server="Python/3.12 aiohttp/3.9.5"), "aiohttp", "aiohttp"),
        (answered(404, b"<html><title>404: Not Found</title><body>404: Not Found</body></html>",
                  server="TornadoServer/6.4"), "Tornado", "tornado"),
        (answered(413, b"<html><center><h1>413 Request Entity Too Large</h1></center><hr>"
                  b"<center>nginx/1.24.0</center>", server="nginx/1.24.0"), None, "nginx"),
    ],
    ids=["django", "flask", "fastapi", "express", "aiohttp", "tornado", "nginx"],
)  # fmt: skip
def test_fingerprint(exchange: Exchange, framework: str | None, server: str | None) -> None:
    stack = fingerprint([exchange])
    assert (stack.framework, stack.server) == (framework, server)


def test_stack_hints_name_the_stack() -> None:
    assert (stack_hint("unbounded-body", Stack("Django", "gunicorn")) or "").startswith("Django: ")
    assert "client_max_body_size" in (stack_hint("unbounded-body", Stack(None, "nginx")) or "")
    assert stack_hint("unbounded-body", Stack()) is None


@pytest.mark.parametrize(
    ("headers", "allowance"),
    [
        ({"ratelimit-policy": '"requests";q=600;w=60, "failures";q=20;w=60'}, 20),
        ({"ratelimit-policy": "100;w=60"}, 100),
        ({"ratelimit": "limit=100, remaining=42, reset=5"}, 42),
        ({"ratelimit": '"default";r=7;t=30'}, 7),
        ({"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}, 4999),
        ({"server": "gunicorn"}, None),
    ],
)
def test_advertised_allowance(headers: dict[str, str], allowance: int | None) -> None:
    ex = Exchange(Outcome.RESPONSE, 0, status=200, headers=tuple(headers.items()))
    assert advertised_allowance([ex]) == allowance
