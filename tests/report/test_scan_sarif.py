"""Scan SARIF: valid SARIF 2.1.0, every result at a repository file (never a web address), mapped by
``--source-map`` or the OpenAPI operation, with host-independent fingerprints that also serve as a
baseline. The schema is the one the audit's SARIF tests ship (data/sarif-2.1.0-subset.schema.json)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pytest

from hmacguard.errors import ConfigurationError
from hmacguard.findings import RULES, Evidence, Finding, Location, Severity
from hmacguard.report.baseline import read_baseline
from hmacguard.report.sarif import FINGERPRINT_KEY, render_sarif
from hmacguard.scan import ScanReport
from hmacguard.scan.rules import SCAN_RULE_IDS
from hmacguard.scan.sourcemap import SourceMap, load_source_map
from tests.report._lab import lab_scan

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json").read_text())


def validate(text: str) -> dict[str, object]:
    log: dict[str, object] = json.loads(text)
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(log, SCHEMA, cls=jsonschema.Draft7Validator)
    return log


def run_of(log: dict[str, object]) -> dict[str, object]:
    runs = log["runs"]
    assert isinstance(runs, list) and len(runs) == 1
    run: dict[str, object] = runs[0]
    return run


def finding(rule: str, url: str, method: str = "POST") -> Finding:
    return Finding(
        rule=rule,
        severity=RULES[rule].severity,
        message=f"{rule} seen",
        location=Location(url=url, method=method),
        evidence=Evidence("measured", {"status": 200}),
        remediation=RULES[rule].remediation,
    )


def apply_scan_baseline(report: ScanReport, baseline: str) -> ScanReport:
    return report.without_baseline(read_baseline(baseline, kind=report.kind))


def with_findings(*findings: Finding) -> ScanReport:
    return dataclasses.replace(lab_scan("flask-guarded"), findings=findings)


@pytest.mark.slow
def test_real_scan_sarif_is_valid_and_describes_every_scan_rule(tmp_path: Path) -> None:
    report = lab_scan("flask-get-data")
    source_map = tmp_path / "endpoints.map"
    source_map.write_text(
        "# the lab's Flask app\nPOST /webhook = src/hmacguard/lab/apps/flask_get_data.py:14\n"
    )
    log = validate(render_sarif(report, source_map=source_map))
    run = run_of(log)
    rules = run["tool"]["driver"]["rules"]  # type: ignore[index]
    assert [r["id"] for r in rules] == list(SCAN_RULE_IDS)
    for rule in rules:
        score = float(rule["properties"]["security-severity"])
        assert 0.0 <= score <= 10.0
    results = run["results"]
    assert isinstance(results, list) and len(results) == len(report.findings)
    for result, f in zip(results, report.findings, strict=True):
        assert result["ruleId"] == f.rule
        assert rules[result["ruleIndex"]]["id"] == f.rule
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"] == {
            "uri": "src/hmacguard/lab/apps/flask_get_data.py",
            "uriBaseId": "%SRCROOT%",
        }
        assert physical["region"] == {"startLine": 14}
        assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == f"POST {report.url}"
        assert set(result["partialFingerprints"]) == {FINGERPRINT_KEY}
        assert result["properties"]["source"] == "source-map"
    assert "%SRCROOT%" in run["originalUriBaseIds"]  # type: ignore[operator]


def test_no_result_points_at_a_web_address_even_unmapped() -> None:
    report = with_findings(finding("unbounded-body", "http://127.0.0.1:8123/hooks/github?x=1"))
    log = validate(render_sarif(report))
    [result] = run_of(log)["results"]  # type: ignore[misc]
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact["uri"] == "endpoints/POST/hooks/github"
    assert "://" not in artifact["uri"]
    assert result["properties"]["source"] == "placeholder"


def test_source_map_matching_first_entry_wins_with_templates_and_wildcards() -> None:
    smap = SourceMap.parse(
        "PUT  /hooks/{id}   = app/hooks.py:10\n"
        "post /webhook      = app/webhooks.py:42   # lower-case method is fine\n"
        "*    /stripe/*     = billing/stripe.py\n"
        "*    *             = app/main.py:1\n"
    )
    locate = smap.locate
    assert locate("PUT", "http://h/hooks/7") == load_path("app/hooks.py", 10)
    assert locate("POST", "http://h/hooks/7") == load_path("app/main.py", 1)  # method differs: falls through
    assert locate("POST", "http://h:9/webhook?a=b") == load_path("app/webhooks.py", 42)
    assert locate("PATCH", "http://h/stripe/v1/events").path == "billing/stripe.py"  # type: ignore[union-attr]
    assert locate("POST", "http://h/hooks/7/extra") == load_path("app/main.py", 1)


def load_path(path: str, line: int) -> object:
    from hmacguard.scan.sourcemap import SourceLocation

    return SourceLocation(path, line)


def test_source_map_json_twin_and_errors(tmp_path: Path) -> None:
    file = tmp_path / "map.json"
    file.write_text(json.dumps({"POST /webhook": "app/webhooks.py:42"}))
    assert load_source_map(file).locate("POST", "http://x/webhook") == load_path("app/webhooks.py", 42)
    for bad, message in (
        ("POST webhook = a.py", "must start with /"),
        ("POST /webhook a.py", "expected 'METHOD PATH = FILE[:LINE]'"),
        ("P0ST /webhook = a.py", "not an HTTP method"),
        ("POST /webhook = a.py:0", "start at 1"),
        ('["POST /webhook"]', "expected an object"),
        ('{"POST /webhook": 3}', "must look like"),
    ):
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            SourceMap.parse(bad, "map")


def test_fingerprints_ignore_host_and_port_and_serve_as_a_baseline() -> None:
    first = with_findings(
        finding("unbounded-body", "http://127.0.0.1:8000/webhook"),
        finding("no-rate-limit", "http://127.0.0.1:8000/webhook"),
    )
    moved = with_findings(
        finding("unbounded-body", "http://localhost:9999/webhook"),
        finding("no-rate-limit", "http://localhost:9999/webhook"),
        finding("chunked-bypass", "http://localhost:9999/webhook"),
    )
    prints = [
        r["partialFingerprints"][FINGERPRINT_KEY] for r in run_of(json.loads(render_sarif(first)))["results"]
    ]  # type: ignore[index,union-attr]
    again = [
        r["partialFingerprints"][FINGERPRINT_KEY] for r in run_of(json.loads(render_sarif(moved)))["results"]
    ]  # type: ignore[index,union-attr]
    assert prints == again[:2] and again[2] not in prints
    kept = apply_scan_baseline(moved, render_sarif(first))
    assert [f.rule for f in kept.findings] == ["chunked-bypass"]
    assert "2 finding(s) already in the baseline" in kept.notes[-1]
    assert kept.score == moved.score


def test_baseline_from_a_json_report_and_refusals() -> None:
    from hmacguard.report.json import render_json

    first = with_findings(finding("unbounded-body", "http://127.0.0.1:8000/webhook"))
    later = with_findings(
        finding("unbounded-body", "http://127.0.0.1:8001/webhook"),
        finding("degradation", "http://127.0.0.1:8001/webhook"),
    )
    assert [f.rule for f in apply_scan_baseline(later, render_json(first)).findings] == ["degradation"]
    assert apply_scan_baseline(later, render_json(later)).findings == ()
    with pytest.raises(ConfigurationError, match="not JSON"):
        apply_scan_baseline(later, "{nope")
    with pytest.raises(ConfigurationError, match="audit report"):
        apply_scan_baseline(
            later, json.dumps({"schema": "hmacguard-report", "kind": "audit", "findings": []})
        )


def test_severity_levels_follow_the_findings() -> None:
    high = finding("unbounded-body", "http://127.0.0.1:1/a")
    low = dataclasses.replace(finding("no-rate-limit", "http://127.0.0.1:1/a"), severity=Severity.LOW)
    results = run_of(json.loads(render_sarif(with_findings(high, low))))["results"]
    assert [r["level"] for r in results] == ["error", "note"]  # type: ignore[index,union-attr]
