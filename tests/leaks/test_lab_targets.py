"""Acceptance on the lab: the exact storing lines in the leaky Django targets, with bytes per request
within 25% of the body; nothing at all in the correct and guarded targets.

One interpreter per target (Django's settings are process-wide), driven through the real CLI.
"""

from __future__ import annotations

import pytest

from tests.leaks._run import APPS, leaks_json, line_of

pytestmark = pytest.mark.slow

BODY = 64 * 1024


@pytest.mark.parametrize(
    ("module", "needle"),
    [
        ("django_body_cache", "SIGNATURE_CACHE[request_id] ="),
        ("django_middleware_attach", "DEBUG_LOG.append("),
    ],
)
def test_finds_the_storing_line(module: str, needle: str) -> None:
    code, report = leaks_json(f"hmacguard.lab.apps.{module}:application", "--requests", "200")
    assert code == 1, report
    assert report["responses"] == {"200": report["requests"] + report["warmup"] + 3}, report["responses"]
    top = report["sites"][0]
    assert top["path"] == f"src/hmacguard/lab/apps/{module}.py"
    assert top["line"] == line_of(APPS / f"{module}.py", needle)
    assert top["trend"] == "growing"
    assert top["how"] == "stored"
    assert abs(top["bytes_per_request"] - BODY) <= 0.25 * BODY, top
    # The body was allocated where the request is read, and the report says so.
    assert any(a.startswith(f"src/hmacguard/lab/apps/{module}.py:") for a in top["allocated_at"]), top
    finding = report["findings"][0]
    assert finding["rule"] == "line-retains-memory"
    assert finding["severity"] == "high"
    assert finding["location"] == {
        "path": top["path"],
        "line": top["line"],
        "snippet": top["source"],
    }
    assert finding["evidence"]["values"]["bytes_per_request"] == round(top["bytes_per_request"])
    assert finding["evidence"]["values"]["objects_per_request"] >= 1
    # Only the storing line: the read of the body is not a second "leak".
    assert len(report["findings"]) == 1, report["findings"]


@pytest.mark.parametrize(
    "target",
    [
        "hmacguard.lab.apps.django_stateless:application",
        "hmacguard.lab.apps.flask_streaming_capped:app",
        "hmacguard.lab.apps.flask_guarded:app",
        "hmacguard.lab.apps.django_guarded:application",
        "hmacguard.lab.apps.fastapi_guarded:app",
    ],
)
def test_reports_nothing_for_correct_targets(target: str) -> None:
    code, report = leaks_json(target, "--requests", "120")
    assert code == 0, report["findings"]
    assert report["findings"] == []
    assert report["sites"] == []
    # ... and the requests really reached the app: a 4xx run would prove nothing.
    assert set(report["responses"]) == {"200"}, report["responses"]
    assert report["warnings"] == []
