"""docs/scan.md stays true to the code: its JSON Schema, its rule table, its score formula and its
lab table are the ones the code and the acceptance test hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import hmacguard.scan.score as score_module
from hmacguard.findings import SCAN_RULE_IDS
from hmacguard.report.scan_json import SCAN_REPORT_SCHEMA
from tests.scan.test_lab_acceptance import EXPECTED

DOC = (Path(__file__).parents[2] / "docs" / "scan.md").read_text()


def test_schema_in_docs_is_the_schema_in_code() -> None:
    block = re.search(r"```json\n(.*?)\n```", DOC, re.S)
    assert block is not None
    assert json.loads(block.group(1)) == SCAN_REPORT_SCHEMA


def test_every_rule_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z-]+)` \| (?:critical|high|medium|low)", DOC, re.M))
    assert documented == set(SCAN_RULE_IDS)


def test_score_formula_in_docs_matches_the_module() -> None:
    formula = re.search(r"```\n(score = .*?)\n```", DOC, re.S)
    assert formula is not None

    def lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    module = lines(score_module.__doc__ or "")
    documented = lines(formula.group(1))
    start = module.index(documented[0])
    assert module[start : start + len(documented)] == documented


def test_lab_table_in_docs_matches_the_acceptance_table() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| (.*?) \| (\d+) \| ([A-F]) \|$", DOC, re.M)
    table = {name: set(re.findall(r"`([a-z-]+)`", found)) for name, found, _, _ in rows}
    assert table == EXPECTED
