"""The engine's contract: suppressions, baselines, files that do not parse, rules that crash."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hmacguard.audit import AUDIT_RULES, DiagnosticKind, audit
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.errors import ConfigurationError
from hmacguard.findings import RULES, Category, Finding, Severity
from hmacguard.report import fingerprints

FLASK_VIEW = """\
import hashlib
import hmac

from flask import Flask, request

app = Flask(__name__)


@app.post("/hook")
def hook():
    body = request.get_data(){marker}
    return {{"sig": hmac.new(b"k", body, hashlib.sha256).hexdigest()}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rules_of(findings: tuple[Finding, ...]) -> list[str]:
    return [f.rule for f in findings]


def test_inline_suppression_must_name_the_rule_and_is_counted(tmp_path: Path) -> None:
    write(tmp_path, "app.py", FLASK_VIEW.format(marker="  # hmacguard: ignore[py-unbounded-body-hmac]"))
    result = audit([tmp_path])
    assert rules_of(result.findings) == ["flask-max-content-length"]
    assert rules_of(result.suppressed) == ["py-unbounded-body-hmac"]
    assert result.summary()["suppressed"] == 1


def test_suppression_on_the_line_above(tmp_path: Path) -> None:
    text = FLASK_VIEW.format(marker="").replace(
        "    body = request.get_data()",
        "    # hmacguard: ignore[py-unbounded-body-hmac, flask-max-content-length]\n"
        "    body = request.get_data()",
    )
    write(tmp_path, "app.py", text)
    result = audit([tmp_path])
    assert rules_of(result.suppressed) == ["py-unbounded-body-hmac"]
    assert rules_of(result.findings) == ["flask-max-content-length"]


def test_suppression_naming_another_rule_does_not_hide(tmp_path: Path) -> None:
    write(tmp_path, "app.py", FLASK_VIEW.format(marker="  # hmacguard: ignore[py-body-in-cache]"))
    result = audit([tmp_path])
    assert "py-unbounded-body-hmac" in rules_of(result.findings)
    assert result.suppressed == ()


def test_bare_suppression_is_ignored_and_reported(tmp_path: Path) -> None:
    write(tmp_path, "app.py", FLASK_VIEW.format(marker="  # hmacguard: ignore"))
    result = audit([tmp_path])
    assert "py-unbounded-body-hmac" in rules_of(result.findings)
    kinds = [d.kind for d in result.diagnostics]
    assert kinds == [DiagnosticKind.BAD_SUPPRESSION]
    assert result.diagnostics[0].line == 11


def test_javascript_suppression(tmp_path: Path) -> None:
    write(
        tmp_path,
        "hook.js",
        """\
        let body = '';
        req.on('data', (c) => { body += c; }); // hmacguard: ignore[js-unbounded-body-concat]
        """,
    )
    result = audit([tmp_path])
    assert result.findings == ()
    assert rules_of(result.suppressed) == ["js-unbounded-body-concat"]


def test_files_that_do_not_parse_are_reported_and_skipped(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "import hmac\ndef view(request:\n    return request.body\n")
    write(tmp_path, "broken.js", "req.on('data', (c) => { body += c; );\n")
    write(tmp_path, "nginx.conf", "http { client_max_body_size 0;\n")
    write(tmp_path, "good.js", "let body = '';\nreq.on('data', (c) => { body += c; });\n")
    result = audit([tmp_path])
    parse_errors = sorted(Path(d.path).name for d in result.diagnostics)
    assert parse_errors == ["broken.js", "broken.py", "nginx.conf"]
    assert all(d.kind is DiagnosticKind.PARSE_ERROR for d in result.diagnostics)
    assert [(Path(f.location.path or "").name, f.rule) for f in result.findings] == [
        ("good.js", "js-unbounded-body-concat")
    ]


def test_a_crashing_rule_becomes_a_diagnostic(tmp_path: Path) -> None:
    @audit_rule(
        id="test-crashing-rule",
        title="A rule that always crashes (test only)",
        language=Language.PYTHON,
        category=Category.INPUT_VALIDATION,
        severity=Severity.LOW,
        cwe=(400,),
        remediation="None: it is a test.",
        trigger=any_of("hmac"),
    )
    def crash(ctx: object) -> Iterator[Finding]:
        raise RuntimeError("boom")

    try:
        write(tmp_path, "app.py", FLASK_VIEW.format(marker=""))
        result = audit([tmp_path])
        crashed = [d for d in result.diagnostics if d.kind is DiagnosticKind.RULE_ERROR]
        assert [(d.rule, d.message) for d in crashed] == [
            ("test-crashing-rule", "rule crashed: RuntimeError: boom")
        ]
        assert "py-unbounded-body-hmac" in rules_of(result.findings)  # the others still ran
    finally:
        from hmacguard import findings
        from hmacguard.audit import registry

        registry._AUDIT.pop("test-crashing-rule", None)
        findings._RULES.pop("test-crashing-rule", None)


def test_baseline_drops_known_findings_only(tmp_path: Path) -> None:
    app = write(tmp_path, "app.py", FLASK_VIEW.format(marker=""))
    first = audit([tmp_path])
    known = set(fingerprints(list(first.findings)))
    # Lines added above keep the fingerprints; a new flaw is new.
    app.write_text(
        "# a comment\n\n" + app.read_text() + "\nSTORE = []\n\n\n@app.post('/x')\n"
        "def x():\n    STORE.append(request.get_data())\n    return {}\n"
    )
    second = audit([tmp_path]).without_baseline(known, fingerprints)
    assert rules_of(second.findings) == ["py-body-retained-global"]
    assert second.baselined == 2


def test_rule_selection_and_unknown_rule(tmp_path: Path) -> None:
    write(tmp_path, "app.py", FLASK_VIEW.format(marker=""))
    only = audit([tmp_path], rules=["flask-max-content-length"])
    assert rules_of(only.findings) == ["flask-max-content-length"]
    with pytest.raises(ConfigurationError, match="unknown audit rule"):
        audit([tmp_path], rules=["no-such-rule"])


def test_missing_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        audit([tmp_path / "absent"])


def test_walk_skips_vendored_folders_but_not_explicit_paths(tmp_path: Path) -> None:
    js = "let body = '';\nreq.on('data', (c) => { body += c; });\n"
    write(tmp_path, "node_modules/dep/index.js", js)
    write(tmp_path, ".venv/lib/x.js", js)
    assert audit([tmp_path]).findings == ()
    assert len(audit([tmp_path / "node_modules" / "dep"]).findings) == 1


def test_every_audit_rule_is_documented_in_the_catalogue() -> None:
    for rule_id, audit_rule_ in AUDIT_RULES.items():
        rule = RULES[rule_id]
        assert rule.source == "audit"
        assert rule.doc.startswith(rule.doc.split("\n")[0]) and len(rule.doc) > 200
        assert "**What it finds.**" in rule.doc and "**Not reported.**" in rule.doc
        assert audit_rule_.rule is rule
