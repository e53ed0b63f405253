"""SARIF output: valid against a SARIF 2.1.0 schema, and structurally what GitHub code scanning needs.

The schema in ``data/sarif-2.1.0-subset.schema.json`` is written for these tests (the official OASIS
file is not vendored): it covers every SARIF object hmacguard emits, with the required properties,
enumerations, minimums and closed objects (``additionalProperties: false``) that the OASIS schema
gives those objects, so an unknown or misspelt property fails here as it would there. The
structural checks below add the specification's cross-references that no JSON schema expresses
(``ruleIndex`` points at the rule with that ``id``, one fingerprint per result...).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from hmacguard.audit import AUDIT_RULES, audit
from hmacguard.findings import RULES, Evidence, Finding, Location, Severity, fingerprints
from hmacguard.report.baseline import read_baseline
from hmacguard.report.json import render_json
from hmacguard.report.sarif import FINGERPRINT_KEY, render_sarif
from tests.report._results import Findings

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json").read_text())
LAB_APPS = Path(__file__).parents[2] / "src" / "hmacguard" / "lab" / "apps"


def validate(log: dict[str, object]) -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(log, SCHEMA, cls=jsonschema.Draft7Validator)


def endpoint_finding() -> Finding:
    return Finding(
        rule="chunked-bypass",
        severity=Severity.HIGH,
        message="A chunked 64 MiB body was accepted (200) while Content-Length bodies got 413.",
        location=Location(url="http://127.0.0.1:8000/webhook", method="POST"),
        evidence=Evidence("chunked accepted", {"bytes_accepted": 67108864, "status": 200}),
        remediation=RULES["chunked-bypass"].remediation,
    )


@pytest.fixture(scope="module")
def lab_log() -> dict[str, object]:
    result = audit([LAB_APPS])
    assert result.findings
    text = render_sarif(result)
    log: dict[str, object] = json.loads(text)
    return log


def test_audit_log_is_valid_sarif(lab_log: dict[str, object]) -> None:
    validate(lab_log)


def test_required_properties_and_cross_references(lab_log: dict[str, object]) -> None:
    assert lab_log["version"] == "2.1.0"
    (run,) = lab_log["runs"]  # type: ignore[misc]
    driver = run["tool"]["driver"]
    assert driver["name"] == "hmacguard"
    rules = driver["rules"]
    assert {r["id"] for r in rules} == set(AUDIT_RULES)  # a clean rule is still described
    assert run["automationDetails"]["id"] == "hmacguard/audit/"
    assert run["invocations"][0]["executionSuccessful"] is True
    seen = set()
    for result in run["results"]:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        fingerprint = result["partialFingerprints"][FINGERPRINT_KEY]
        assert fingerprint not in seen
        seen.add(fingerprint)
        assert "primaryLocationLineHash" not in result["partialFingerprints"]  # GitHub's own key
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert not physical["artifactLocation"]["uri"].startswith("/")
        assert physical["region"]["startLine"] >= 1
        assert physical["region"]["snippet"]["text"]


def test_rules_carry_security_severity_and_cwe_tags(lab_log: dict[str, object]) -> None:
    (run,) = lab_log["runs"]  # type: ignore[misc]
    for rule in run["tool"]["driver"]["rules"]:
        props = rule["properties"]
        score = float(props["security-severity"])
        assert 0.0 <= score <= 10.0
        severity = RULES[rule["id"]].severity
        assert (score >= 7.0) == (severity >= Severity.HIGH)
        assert "security" in props["tags"]
        assert any(t.startswith("external/cwe/cwe-") for t in props["tags"])
        assert rule["shortDescription"]["text"] == RULES[rule["id"]].title
        assert RULES[rule["id"]].remediation in rule["help"]["text"]


def test_endpoint_findings_suppressions_and_notifications_are_valid(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import hmac\nhmac.compare_digest(a, b\n", encoding="utf-8")
    (tmp_path / "hook.js").write_text(
        "let b = '';\nreq.on('data', (c) => { b += c; }); // hmacguard: ignore[js-unbounded-body-concat]\n",
        encoding="utf-8",
    )
    result = audit([tmp_path])
    assert result.suppressed and result.diagnostics
    # Any result renders: here the audit's suppressions and diagnostics beside an endpoint finding.
    mixed = dataclasses.replace(result, findings=(endpoint_finding(),), rules=())
    log = json.loads(render_sarif(mixed))
    validate(log)
    (run,) = log["runs"]
    endpoint, suppressed = run["results"]
    # Never a web address (code scanning refuses it): the endpoint's stand-in file, the URL beside it.
    location = endpoint["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "endpoints/POST/webhook"
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "POST http://127.0.0.1:8000/webhook"
    assert suppressed["suppressions"] == [{"kind": "inSource", "status": "accepted"}]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {
        "chunked-bypass",
        "js-unbounded-body-concat",
    }


def test_fingerprints_survive_edits_above_and_tell_duplicates_apart() -> None:
    def at(line: int, snippet: str) -> Finding:
        return Finding(
            rule="py-body-in-cache",
            severity=Severity.HIGH,
            message="m",
            location=Location(path="app/views.py", line=line, snippet=snippet),
            evidence=Evidence("m"),
            remediation="r",
        )

    before = fingerprints([at(10, "cache.set(body, 1)"), at(20, "cache.set(body,  1)")])
    after = fingerprints([at(14, "cache.set(body, 1)"), at(24, "cache.set(body, 1)")])
    assert before == after
    assert before[0] != before[1]  # the same code twice: occurrence 0 and 1


def test_json_envelope_is_generic_and_reads_back_as_a_baseline() -> None:
    result = Findings("scan", (endpoint_finding(),), content={"target": "http://127.0.0.1:8000/webhook"})
    text = render_json(result)
    data = json.loads(text)
    assert data["kind"] == "scan" and data["target"].endswith("/webhook")
    assert data["summary"]["by_severity"]["high"] == 1
    assert read_baseline(text, kind="scan") == {data["findings"][0]["fingerprint"]}
    sarif = render_sarif(result)
    assert read_baseline(sarif, kind="scan") == read_baseline(text, kind="scan")


def test_json_keeps_its_envelope_and_refuses_bad_baselines() -> None:
    from hmacguard.errors import ConfigurationError

    data = json.loads(render_json(Findings("audit", (), content={"findings": ["clash"], "kind": "x"})))
    assert data["findings"] == [] and data["kind"] == "audit"  # the envelope's keys win
    with pytest.raises(ConfigurationError, match="not JSON"):
        read_baseline("{nope", kind="audit")
    with pytest.raises(ConfigurationError, match="neither"):
        read_baseline('{"something": "else"}', kind="audit")
    audit_report = render_json(Findings("audit", ()))
    with pytest.raises(ConfigurationError, match="audit report, not a scan report"):
        read_baseline(audit_report, kind="scan")
