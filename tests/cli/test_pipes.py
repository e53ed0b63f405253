"""List commands in a pipe print whole lines and offer JSON; help and --explain show no reST markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmacguard.cli import app
from hmacguard.lab import TARGETS
from hmacguard.scan.rules import SCAN_RULE_IDS

runner = CliRunner()  # stdout is not a terminal here, as in a pipe


def test_lab_list_in_a_pipe_keeps_every_name_whole() -> None:
    result = runner.invoke(app, ["lab", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["name", "framework", "server", "flaw", "expected", "hmacguard scan finds"]
    assert [line.split("\t")[0] for line in lines[1:]] == list(TARGETS)  # flask-content-length-check too
    assert all(len(line.split("\t")) == 6 for line in lines)
    finds = dict(line.split("\t")[::5] for line in lines[1:])
    assert finds["flask-no-dedupe"] == "no-rate-limit; with --secret: + replay-accepted"
    assert finds["flask-guarded"] == "nothing (with --secret too)"


def test_lab_list_json() -> None:
    result = runner.invoke(app, ["lab", "list", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [t["name"] for t in data] == list(TARGETS)
    assert {"framework", "server", "vulnerable", "flaw", "expected", "scan_findings"} <= data[0].keys()
    by_name = {t["name"]: t["scan_findings"] for t in data}
    assert by_name["flask-string-match-guard"]["without_secret"] == ["signature-bypass-path", "no-rate-limit"]
    assert "stale-timestamp-accepted" in by_name["flask-stripe-no-age"]["with_secret"]


def test_rules_in_a_pipe_one_rule_per_line() -> None:
    result = runner.invoke(app, ["rules"])
    assert result.exit_code == 0
    ids = [line.split("\t")[0] for line in result.stdout.splitlines()[1:]]
    assert ids[: len(SCAN_RULE_IDS)] == list(SCAN_RULE_IDS)
    assert "py-content-length-guard-bypass" in ids and "line-retains-memory" in ids


def test_history_in_a_pipe_and_as_json(tmp_path: Path) -> None:
    history = str(tmp_path / "h.sqlite3")
    empty = runner.invoke(app, ["history", "--history", history, "--format", "json"])
    assert empty.exit_code == 0 and json.loads(empty.stdout)["scans"] == []


@pytest.mark.parametrize("rule", ["unbounded-body", "py-content-length-guard-bypass", "line-retains-memory"])
def test_explain_prints_the_documentation_without_rest_markup(rule: str) -> None:
    result = runner.invoke(app, ["rules", "--explain", rule])
    assert result.exit_code == 0
    assert "``" not in result.stdout and ".. code-block" not in result.stdout and ":mod:" not in result.stdout
    assert "Remediation" in result.stdout


def test_explain_a_scan_rule_says_how_it_is_judged() -> None:
    text = runner.invoke(app, ["rules", "--explain", "memory-amplification"]).stdout
    for section in ("How it is judged.", "Thresholds and why.", "What can make it wrong."):
        assert section in text
    assert "32 MiB" in text  # the threshold, and why


@pytest.mark.parametrize(
    "args", [[], ["scan"], ["audit"], ["leaks"], ["rules"], ["history"], ["diff"], ["lab", "serve"]]
)
def test_help_texts_show_no_rest_markup(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0
    assert "``" not in result.stdout
