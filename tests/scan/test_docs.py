"""The docs stay true to the code: docs/rules.md and docs/scan.md's rule section are generated from the
rule docstrings (``make docs``), and scan.md's JSON Schema, score formula and lab table are the ones
the code and the acceptance test hold."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import hmacguard.scan.score as score_module
from hmacguard.report.json import SCAN_REPORT_SCHEMA
from hmacguard.scan.rules import SCAN_RULE_IDS
from tests.scan.test_lab_acceptance import EXPECTED, EXPECTED_SIGNED

DOC = (Path(__file__).parents[2] / "docs" / "scan.md").read_text()


def test_schema_in_docs_is_the_schema_in_code() -> None:
    block = re.search(r"```json\n(.*?)\n```", DOC, re.S)
    assert block is not None
    assert json.loads(block.group(1)) == SCAN_REPORT_SCHEMA


def test_generated_docs_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate", Path(__file__).parents[2] / "docs" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for path, text in generate.generated().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run `make docs`"
    for rule in SCAN_RULE_IDS:
        assert f"#### {rule}\n" in DOC and "**How it is judged.**" in DOC


def test_score_formula_in_docs_matches_the_module() -> None:
    formula = re.search(r"```\n(score = .*?)\n```", DOC, re.S)
    assert formula is not None

    def lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    module = lines(score_module.__doc__ or "")
    documented = lines(formula.group(1))
    start = module.index(documented[0])
    assert module[start : start + len(documented)] == documented


def _lab_table(text: str) -> dict[str, set[str]]:
    rows = re.findall(r"^\| `([a-z-]+)` \| (.*?) \| (\d+) \| ([A-F]) \|$", text, re.M)
    return {name: set(re.findall(r"`([a-z-]+)`", found)) for name, found, _, _ in rows}


def test_lab_tables_in_docs_match_the_acceptance_tables() -> None:
    lab = DOC.split("## What the lab gets", 1)[1].split("\n## ", 1)[0]
    forged, signed = lab.split("<!-- with --secret -->", 1)
    assert _lab_table(forged) == EXPECTED
    assert _lab_table(signed) == EXPECTED_SIGNED
