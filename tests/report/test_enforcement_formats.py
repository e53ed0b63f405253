"""The enforcement rules in every format: a real scan of flask-string-match-guard (an unsigned request
reaches the view as ``//webhook``) rendered as terminal, JSON, SARIF, JUnit and HTML, and `hmacguard
diff` against the guarded target listing the bypass as fixed. Without --secret the replay and stale
timestamp rules are skipped with their reason, never passed."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from rich.console import Console

from hmacguard.report.html import render_scan_html
from hmacguard.report.json import SCAN_REPORT_SCHEMA, diff_json, envelope, render_json
from hmacguard.report.junit import render_junit
from hmacguard.report.sarif import render_sarif
from hmacguard.report.terminal.history import render_diff
from hmacguard.report.terminal.scan import render_scan
from hmacguard.scan.diff import diff_scans
from tests.report._lab import lab_scan
from tests.report.test_scan_sarif import run_of, validate

pytestmark = pytest.mark.slow

RULE = "signature-bypass-path"


def test_terminal_shows_the_finding_and_the_probes() -> None:
    report = lab_scan("flask-string-match-guard")
    out = io.StringIO()
    render_scan(report, Console(file=out, width=200, color_system=None), verbose=True)
    text = out.getvalue()
    assert "CRITICAL" in text and RULE in text and "//webhook" in text
    assert "Signature (test event" in text and "Enforcement probes" in text
    assert "replay-accepted: needs --secret" in text
    assert report.grade == "F" and report.score <= 50


def test_json_carries_the_finding_and_every_enforcement_probe() -> None:
    report = lab_scan("flask-string-match-guard")
    data = json.loads(render_json(report))
    jsonschema.validate(data, SCAN_REPORT_SCHEMA)
    assert data == envelope(report) and data["schema_version"] == "1.4"
    finding = next(f for f in data["findings"] if f["rule"] == RULE)
    assert (finding["severity"], finding["category"], finding["owasp"]) == (
        "critical", "Authentication", "API2:2023 Broken Authentication",
    )  # fmt: skip
    assert finding["cwe"] == ["CWE-288", "CWE-41"] and finding["stack"].startswith("Flask")
    probes = data["enforcement"]["probes"]
    assert {p["kind"] for p in probes} == {"unsigned", "forged", "sibling", "spelling"}
    assert [p["target"] for p in probes if p["accepted"]] == ["//webhook", "/%2Fwebhook"]


def test_sarif_describes_the_enforcement_rules_and_reports_the_bypass() -> None:
    run = run_of(validate(render_sarif(lab_scan("flask-string-match-guard"))))
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}  # type: ignore[index]
    for rule in ("signature-not-enforced", RULE, "replay-accepted", "stale-timestamp-accepted"):
        assert "Authentication" in rules[rule]["properties"]["tags"]
    assert float(rules[RULE]["properties"]["security-severity"]) >= 9.0
    assert "external/cwe/cwe-288" in rules[RULE]["properties"]["tags"]
    assert [r["ruleId"] for r in run["results"] if r["ruleId"] == RULE] == [RULE]  # type: ignore[union-attr]


def test_junit_fails_the_bypass_and_skips_what_needs_the_secret() -> None:
    root = ET.fromstring(render_junit(lab_scan("flask-string-match-guard")))
    cases = {c.get("name", "").split(":")[0]: c for c in root.iter("testcase")}
    assert cases[RULE].find("failure") is not None
    assert cases["signature-not-enforced"].find("failure") is None
    assert cases["signature-not-enforced"].find("skipped") is None  # tested, and passed
    for rule in ("replay-accepted", "stale-timestamp-accepted"):
        skipped = cases[rule].find("skipped")
        assert skipped is not None and "--secret" in (skipped.get("message") or skipped.text or ""), rule


def test_html_has_the_enforcement_section() -> None:
    page = render_scan_html(lab_scan("flask-string-match-guard"))
    assert "Signature enforcement" in page and RULE in page and "/%2Fwebhook" in page


def test_diff_lists_the_bypass_as_fixed_by_the_guard() -> None:
    before = lab_scan("flask-string-match-guard").to_dict()
    after = lab_scan("flask-guarded").to_dict()
    diff = diff_scans(before, after)
    data = json.loads(diff_json(diff))
    assert RULE in {f["rule"] for f in data["fixed"]} and data["new"] == []
    out = io.StringIO()
    render_diff(diff, Console(file=out, width=200, color_system=None))
    fixed = out.getvalue().split("Fixed (")[1].split("New (")[0]
    assert RULE in fixed
