"""The audit against its labelled corpus: every expectation met, no finding unexpected."""

from __future__ import annotations

import pytest

from hmacguard.audit import AUDIT_RULES
from tests.audit._corpus import Project, found, projects

PROJECTS = projects()


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_project_matches_its_expectations(project: Project) -> None:
    got = found(project)
    missing = sorted(project.expected - got)
    unexpected = sorted(got - project.expected)
    assert not missing and not unexpected, f"missing={missing} unexpected={unexpected}"


def test_near_misses_are_not_reported() -> None:
    wrongly = sorted((p.name, *m) for p in PROJECTS for m in p.near_misses & found(p))
    assert not wrongly


def test_corpus_is_large_and_covers_every_rule() -> None:
    positives = sum(len(p.expected) for p in PROJECTS)
    negatives = sum(len(p.near_misses) for p in PROJECTS)
    assert positives + negatives >= 60
    assert negatives >= 20
    labelled = {rule for p in PROJECTS for (_, _, rule) in p.expected | p.near_misses}
    assert labelled >= set(AUDIT_RULES), sorted(set(AUDIT_RULES) - labelled)
    assert {rule for p in PROJECTS for (_, _, rule) in p.expected} >= set(AUDIT_RULES)


def test_every_label_names_a_real_rule() -> None:
    for p in PROJECTS:
        for _, _, rule in p.expected | p.near_misses:
            assert rule in AUDIT_RULES, f"{p.name}: unknown rule {rule!r}"
