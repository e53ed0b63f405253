"""``hmacguard audit`` and ``hmacguard rules`` as a user runs them: output formats, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmacguard.cli import app
from hmacguard.findings import SCAN_RULE_IDS

LAB_APPS = Path(__file__).parents[2] / "src" / "hmacguard" / "lab" / "apps"
runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hook.js").write_text(
        "let body = '';\nreq.on('data', (c) => { body += c; });\n", encoding="utf-8"
    )
    (tmp_path / "nginx.conf").write_text("http { client_max_body_size 20m; }\n", encoding="utf-8")
    return tmp_path


def test_exit_codes_follow_the_threshold(project: Path) -> None:
    assert runner.invoke(app, ["audit", str(project)]).exit_code == 1
    assert runner.invoke(app, ["audit", str(project), "--fail-on", "high"]).exit_code == 1
    assert runner.invoke(app, ["audit", str(project), "--fail-on", "critical"]).exit_code == 0
    clean = project / "clean"
    clean.mkdir()
    (clean / "ok.py").write_text("x = 1\n", encoding="utf-8")
    assert runner.invoke(app, ["audit", str(clean)]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "does-not-exist"], "no such file or directory"),
        (["audit", ".", "--fail-on", "severe"], "unknown severity"),
        (["audit", ".", "--rule", "nope"], "unknown audit rule"),
        (["audit", ".", "--baseline", "missing.json"], "missing.json"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    project: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_json_report_and_baseline_round_trip(project: Path) -> None:
    report = project / "report.json"
    first = runner.invoke(app, ["audit", str(project), "-f", "json", "-o", str(report)])
    assert first.exit_code == 1
    data = json.loads(report.read_text(encoding="utf-8"))
    assert (data["schema"], data["version"], data["kind"]) == ("hmacguard-report", 1, "audit")
    assert sorted(f["rule"] for f in data["findings"]) == [
        "js-unbounded-body-concat",
        "nginx-client-max-body-size",
    ]
    assert all(f["fingerprint"] for f in data["findings"])
    assert data["run"]["files"] == 2 and data["diagnostics"] == []
    again = runner.invoke(app, ["audit", str(project), "-f", "json", "--baseline", str(report)])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["findings"] == []
    assert json.loads(again.stdout)["run"]["baselined"] == 2


def test_sarif_report_is_also_a_baseline(project: Path) -> None:
    sarif = project / "audit.sarif"
    runner.invoke(app, ["audit", str(project), "-f", "sarif", "-o", str(sarif)])
    log = json.loads(sarif.read_text(encoding="utf-8"))
    assert log["version"] == "2.1.0"
    result = runner.invoke(app, ["audit", str(project), "--baseline", str(sarif)])
    assert result.exit_code == 0


def test_terminal_report_to_a_file(project: Path) -> None:
    out = project / "report.txt"
    runner.invoke(app, ["audit", str(project), "-o", str(out)])
    text = out.read_text(encoding="utf-8")
    assert "js-unbounded-body-concat" in text and "2 findings" in text


def test_real_process_on_the_lab_apps() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hmacguard", "audit", str(LAB_APPS), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["summary"]["findings"] >= 10


def test_rules_lists_audit_and_scanner_rules() -> None:
    result = runner.invoke(app, ["rules", "--format", "json"])
    assert result.exit_code == 0
    ids = {r["id"]: r for r in json.loads(result.stdout)}
    assert set(SCAN_RULE_IDS) <= ids.keys()
    assert ids["py-unbounded-body-hmac"]["source"] == "audit"
    assert "**What it finds.**" in ids["py-unbounded-body-hmac"]["doc"]


def test_rules_explain_and_unknown() -> None:
    result = runner.invoke(app, ["rules", "--explain", "js-parser-limit-stream-bypass"])
    assert result.exit_code == 0
    assert "content type" in result.stdout and "Remediation" in result.stdout
    missing = runner.invoke(app, ["rules", "--explain", "no-such-rule"])
    assert missing.exit_code == 2 and "unknown rule" in missing.output


def test_docs_rules_md_is_generated_from_the_catalogue() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    result = runner.invoke(app, ["rules", "--format", "markdown", "--source", "audit"])
    for line in result.stdout.splitlines():
        if line.startswith("## "):
            assert line in doc, f"docs/rules.md is stale: regenerate it ({line})"
    assert "hmacguard rules --format markdown" in doc


def test_incomplete_audit_has_its_own_exit_status(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import hmac\ndef hook(:\n    hmac.new(request.get_data())\n")
    result = runner.invoke(app, ["audit", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "INCOMPLETE" in result.output
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["audit", str(tmp_path), "-f", "json", "-o", str(out)])
    assert result.exit_code == 3
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["run"]["incomplete"] is True
    assert report["unaudited"] == [str((tmp_path / "broken.py").resolve())]


def test_exclude_include_vendored_and_include_tests_options(tmp_path: Path) -> None:
    concat = "req.on('data', (chunk) => { body += chunk; });\n"
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "a.js").write_text(concat, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "b.js").write_text(concat, encoding="utf-8")
    assert runner.invoke(app, ["audit", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["audit", str(tmp_path), "--include-tests"]).exit_code == 1
    assert runner.invoke(app, ["audit", str(tmp_path), "--include-vendored"]).exit_code == 1
    vendored_only = ["audit", str(tmp_path), "--include-vendored", "--exclude", "vendor/"]
    assert runner.invoke(app, vendored_only).exit_code == 0
