"""``--format junit`` for any result: one testcase per rule checked, a failure per rule that found.

CI systems (GitLab, Jenkins, Azure Pipelines, GitHub test-report actions) show JUnit XML as a test
list, so every rule the run *checked* is a testcase that passes, fails or was skipped:

- scan: one ``testsuite`` per endpoint (several for ``scan --openapi``); a rule whose probes the
  budget or the missing memory observation left out is ``skipped`` with the reason;
- audit: one ``testsuite``; a rule that crashed on a file is an ``error`` of its testcase, files
  that did not parse go to the suite's ``system-err``;
- any other result (leaks): one ``testsuite`` of the rules it checked.

All findings of one rule become one ``failure`` (its message counts them, its text lists each with
evidence and the fix). Findings below ``fail_on`` do not fail the testcase; they are listed in its
``system-out``, so the XML agrees with the exit code of the same run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from hmacguard.audit.model import AuditResult, DiagnosticKind
from hmacguard.findings import Finding, Result, Severity, get_rule
from hmacguard.scan.model import ScanReport
from hmacguard.scan.openapi import OpenApiScan
from hmacguard.scan.rules import SCAN_RULES

__all__ = ["JUnitCase", "JUnitSuite", "junit_document", "render_junit"]

# XML 1.0 forbids most control characters, even escaped; a snippet may carry one.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass
class JUnitCase:
    name: str
    classname: str
    failures: list[Finding] = field(default_factory=list)
    passed_findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class JUnitSuite:
    name: str
    cases: list[JUnitCase]
    time: float = 0.0
    timestamp: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    system_out: list[str] = field(default_factory=list)
    system_err: list[str] = field(default_factory=list)


def _finding_text(f: Finding) -> str:
    lines = [f"[{f.severity.label}] {f.location}: {f.message}"]
    if f.location.snippet:
        lines.append(f"    | {f.location.snippet}")
    if f.evidence.summary and f.evidence.summary != f.message:
        lines.append(f"    evidence: {f.evidence.summary}")
    lines.append(f"    fix: {f.stack or f.remediation}")
    return "\n".join(lines)


def _case(name: str, classname: str, findings: Sequence[Finding], fail_on: Severity) -> JUnitCase:
    title = get_rule(name).title
    return JUnitCase(
        name=f"{name}: {title}",
        classname=classname,
        failures=[f for f in findings if f.severity >= fail_on],
        passed_findings=[f for f in findings if f.severity < fail_on],
    )


def _suite_element(suite: JUnitSuite) -> ET.Element:
    failures = sum(1 for c in suite.cases if c.failures)
    errors = sum(1 for c in suite.cases if c.errors)
    skipped = sum(1 for c in suite.cases if c.skipped is not None and not c.failures)
    attrs = {
        "name": _clean(suite.name),
        "tests": str(len(suite.cases)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{suite.time:.3f}",
    }
    if suite.timestamp:
        attrs["timestamp"] = suite.timestamp
    element = ET.Element("testsuite", attrs)
    if suite.properties:
        props = ET.SubElement(element, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(props, "property", {"name": key, "value": _clean(value)})
    for case in suite.cases:
        node = ET.SubElement(
            element, "testcase", {"name": _clean(case.name), "classname": _clean(case.classname), "time": "0"}
        )
        if case.failures:
            worst = max(f.severity for f in case.failures)
            first = case.failures[0]
            more = f" (and {len(case.failures) - 1} more)" if len(case.failures) > 1 else ""
            failure = ET.SubElement(
                node,
                "failure",
                {"type": first.rule, "message": _clean(f"{worst.label}: {first.message}{more}")},
            )
            failure.text = _clean("\n\n".join(_finding_text(f) for f in case.failures))
        elif case.skipped is not None:
            ET.SubElement(node, "skipped", {"message": _clean(case.skipped)})
        for message in case.errors:
            error = ET.SubElement(
                node,
                "error",
                {"type": "rule-error", "message": _clean(message.splitlines()[0] if message else "")},
            )
            error.text = _clean(message)
        if case.passed_findings:
            out = ET.SubElement(node, "system-out")
            out.text = _clean(
                "Below the failure threshold:\n" + "\n\n".join(_finding_text(f) for f in case.passed_findings)
            )
    if suite.system_out:
        ET.SubElement(element, "system-out").text = _clean("\n".join(suite.system_out))
    if suite.system_err:
        ET.SubElement(element, "system-err").text = _clean("\n".join(suite.system_err))
    return element


def junit_document(name: str, suites: Sequence[JUnitSuite]) -> str:
    """The JUnit XML document (``<testsuites>``) of ``suites``."""
    root = ET.Element("testsuites", {"name": name})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    elapsed = 0.0
    for suite in suites:
        element = _suite_element(suite)
        root.append(element)
        for key in totals:
            totals[key] += int(element.get(key, "0"))
        elapsed += suite.time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{elapsed:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _scan_suite(report: ScanReport, fail_on: Severity) -> JUnitSuite:
    endpoint = f"{report.method} {report.url}"
    untested: dict[str, list[str]] = {}
    for u in report.untested:
        untested.setdefault(u.what, []).append(u.reason)
    cases = []
    for rule in report.rules:
        findings = [f for f in report.findings if f.rule == rule]
        case = _case(rule, endpoint, findings, fail_on)
        if not findings:
            # A rule is untested when every phase it judges was (or the memory it needs was unseen),
            # or when the scan listed the rule itself as untested (no secret for a replay, ...).
            phases = SCAN_RULES[rule].phases
            if SCAN_RULES[rule].needs_memory and report.memory_source is None:
                case.skipped = "server memory was not observed (give --pid, --metrics or --launch)"
            elif phases and all(p in untested for p in phases):
                case.skipped = "; ".join(f"{p}: {untested[p][0]}" for p in phases)
            elif rule in untested:
                case.skipped = "; ".join(untested[rule])
        cases.append(case)
    out = [
        f"grade {report.grade}, score {report.score}/100; "
        f"{report.requests} requests, {report.bytes_sent} bytes sent"
    ]
    out += [f"untested: {u.what}: {u.reason}" for u in report.untested]
    out += [f"note: {n}" for n in report.notes]
    return JUnitSuite(
        name=f"hmacguard scan {endpoint}",
        cases=cases,
        time=report.duration_s,
        timestamp=report.started_at.split("+")[0] if report.started_at else None,
        properties={"grade": report.grade, "score": str(report.score), "stack": report.stack.label},
        system_out=out,
    )


def _audit_suites(result: AuditResult, fail_on: Severity) -> list[JUnitSuite]:
    """An audit: one testcase per rule that ran."""
    cases = []
    for rule in result.rules:
        case = _case(rule, "hmacguard.audit", [f for f in result.findings if f.rule == rule], fail_on)
        case.errors = [
            f"{d.path}{f':{d.line}' if d.line else ''}: {d.message}"
            for d in result.diagnostics
            if d.kind is DiagnosticKind.RULE_ERROR and d.rule == rule
        ]
        cases.append(case)
    summary = result.summary()
    suite = JUnitSuite(
        name="hmacguard audit",
        cases=cases,
        time=result.seconds,
        properties={k: str(v) for k, v in summary.items() if not isinstance(v, dict)},
        system_out=[
            f"{result.files} files, {result.lines} lines; {len(result.suppressed)} suppressed, "
            f"{result.baselined} baselined"
        ],
        system_err=[
            f"{d.kind.value}: {d.path}{f':{d.line}' if d.line else ''}: {d.message}"
            for d in result.diagnostics
            if d.kind is not DiagnosticKind.RULE_ERROR
        ],
    )
    return [suite]


def _generic_suites(result: Result, fail_on: Severity) -> list[JUnitSuite]:
    cases = [
        _case(rule, f"hmacguard.{result.kind}", [f for f in result.findings if f.rule == rule], fail_on)
        for rule in result.rules
    ]
    return [JUnitSuite(name=f"hmacguard {result.kind}", cases=cases)]


_SUITES: Mapping[str, Callable[[Result, Severity], list[JUnitSuite]]] = {
    "scan": lambda r, fail_on: [_scan_suite(cast(ScanReport, r), fail_on)],
    "openapi-scan": lambda r, fail_on: [_scan_suite(s, fail_on) for s in cast(OpenApiScan, r).reports],
    "audit": lambda r, fail_on: _audit_suites(cast(AuditResult, r), fail_on),
}


def render_junit(result: Result, *, fail_on: Severity = Severity.INFO) -> str:
    """JUnit XML of ``result``: findings below ``fail_on`` do not fail their testcase."""
    name = "hmacguard scan" if result.kind == "openapi-scan" else f"hmacguard {result.kind}"
    return junit_document(name, _SUITES.get(result.kind, _generic_suites)(result, fail_on))
