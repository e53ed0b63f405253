"""JUnit XML: one testcase per rule checked, failures for the rules that found, skips with reasons."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hmacguard.audit import audit
from hmacguard.findings import Evidence, Finding, Location, Severity
from hmacguard.report.junit import render_junit
from hmacguard.scan.rules import SCAN_RULE_IDS
from tests.report._lab import lab_scan

LAB_APPS = Path(__file__).parents[2] / "src" / "hmacguard" / "lab" / "apps"


def cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    return {case.get("name", "").split(":")[0]: case for case in root.iter("testcase")}


def totals(xml: str) -> dict[str, int]:
    root = ET.fromstring(xml)
    return {k: int(root.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped")}


@pytest.mark.slow
def test_scan_junit_has_a_case_per_rule_and_fails_the_rules_found() -> None:
    report = lab_scan("flask-get-data")
    xml = render_junit(report)
    by_rule = cases(xml)
    assert list(by_rule) == list(SCAN_RULE_IDS)
    found = {f.rule for f in report.findings}
    assert found >= {"unbounded-body", "memory-amplification"}
    for rule, case in by_rule.items():
        failure = case.find("failure")
        assert (failure is not None) == (rule in found), rule
        if failure is not None:
            first = next(f for f in report.findings if f.rule == rule)
            assert failure.get("type") == rule
            assert first.message in (failure.text or "")
            assert "fix:" in (failure.text or "")
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert suite.get("name") == f"hmacguard scan POST {report.url}"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["grade"] == report.grade and props["score"] == str(report.score)
    # Without --secret, the replay and stale-timestamp rules are skipped, saying why.
    assert totals(xml) == {"tests": len(SCAN_RULE_IDS), "failures": len(found), "errors": 0, "skipped": 2}
    for rule in ("replay-accepted", "stale-timestamp-accepted"):
        skipped = by_rule[rule].find("skipped")
        assert skipped is not None and "--secret" in (skipped.get("message") or ""), rule


@pytest.mark.slow
def test_scan_junit_skips_memory_rules_without_memory_and_honours_the_threshold() -> None:
    report = dataclasses.replace(lab_scan("flask-get-data"), memory_source=None)
    report = dataclasses.replace(
        report, findings=tuple(f for f in report.findings if not f.rule.startswith("memory"))
    )
    xml = render_junit(report, fail_on=Severity.HIGH)
    by_rule = cases(xml)
    for rule in ("memory-amplification", "memory-retention"):
        skipped = by_rule[rule].find("skipped")
        assert skipped is not None and "--pid" in (skipped.get("message") or "")
    # no-rate-limit is medium: below the threshold it passes, and says what it saw.
    rate = by_rule["no-rate-limit"]
    assert rate.find("failure") is None
    assert "Below the failure threshold" in (rate.findtext("system-out") or "")
    assert by_rule["unbounded-body"].find("failure") is not None


def test_audit_junit_cases_are_the_rules_that_ran() -> None:
    result = audit([LAB_APPS])
    xml = render_junit(result)
    by_rule = cases(xml)
    assert set(by_rule) == set(result.rules)
    found = {f.rule for f in result.findings}
    assert {r for r, c in by_rule.items() if c.find("failure") is not None} == found
    assert totals(xml)["failures"] == len(found)
    assert totals(xml)["tests"] == len(result.rules)


@pytest.mark.slow
def test_control_characters_in_snippets_stay_valid_xml() -> None:
    finding = Finding(
        rule="unbounded-body",
        severity=Severity.HIGH,
        message="bad \x00 byte \x1b[31m in a snippet",
        location=Location(url="http://127.0.0.1:1/hook", method="POST", snippet="x\x08y"),
        evidence=Evidence("e"),
        remediation="r",
    )
    report = dataclasses.replace(lab_scan("flask-guarded"), findings=(finding,))
    xml = render_junit(report)
    failure = cases(xml)["unbounded-body"].find("failure")
    assert failure is not None and "\ufffd" in (failure.get("message") or "")
