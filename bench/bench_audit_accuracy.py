"""Claim: on its labelled corpus the audit reaches precision >= 0.95 and recall >= 0.90.

The corpus (tests/audit/corpus/) holds every seed snippet and variants, each expected finding marked
inline (``# expect: rule-id``) and each near miss marked ``# ok: rule-id``. Precision is counted
over everything the audit reports on the corpus, recall over every expected finding; per-rule
figures follow. The lab's apps (src/hmacguard/lab/apps/) are scored the same way, against the flaws
the lab targets document, as a second set the corpus was not written around.

Caveat printed with the result: the corpus was written alongside the rules, so it measures that the
rules do what their documentation says; audits of third-party code (django, flask, werkzeug,
starlette, fastapi, slack_bolt, github-webhook, stripe, express, body-parser, @octokit/webhooks),
reviewed finding by finding, are the independent check (tests/audit/test_lab_and_real_code.py pins
the small ones).

Run: ``python bench/bench_audit_accuracy.py`` (exit 1 when a goal is missed).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.audit._corpus import found, projects  # noqa: E402
from tests.audit.test_lab_and_real_code import LAB_APPS, LAB_EXPECTED  # noqa: E402

from hmacguard.audit import AUDIT_RULES, audit  # noqa: E402

PRECISION_GOAL = 0.95
RECALL_GOAL = 0.90


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def corpus_scores() -> tuple[Counter[str], Counter[str], Counter[str], int, int]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    cases = negatives = 0
    for project in projects():
        got = found(project)
        for _, _, rule in got & project.expected:
            tp[rule] += 1
        for _, _, rule in got - project.expected:
            fp[rule] += 1
        for _, _, rule in project.expected - got:
            fn[rule] += 1
        cases += len(project.expected)
        negatives += len(project.near_misses)
    return tp, fp, fn, cases, negatives


def lab_scores() -> tuple[int, int, int]:
    result = audit([LAB_APPS])
    got = {(Path(f.location.path or "").name, f.rule) for f in result.findings}
    expected = {(file, rule) for file, rules in LAB_EXPECTED.items() for rule in rules}
    return len(got & expected), len(got - expected), len(expected - got)


def main() -> int:
    tp, fp, fn, cases, negatives = corpus_scores()
    t, f, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    precision, recall = _ratio(t, t + f), _ratio(t, t + n)
    print(f"corpus: {cases} expected findings, {negatives} labelled near misses")
    print(f"{'rule':<34} {'tp':>4} {'fp':>4} {'fn':>4}")
    for rule in AUDIT_RULES:
        print(f"{rule:<34} {tp[rule]:>4} {fp[rule]:>4} {fn[rule]:>4}")
    print(f"corpus precision {precision:.3f} (goal >= {PRECISION_GOAL})")
    print(f"corpus recall    {recall:.3f} (goal >= {RECALL_GOAL})")
    lt, lf, ln = lab_scores()
    print(
        f"lab apps: precision {_ratio(lt, lt + lf):.3f}, recall {_ratio(lt, lt + ln):.3f} "
        f"({lt} found, {lf} unexpected, {ln} missed)"
    )
    print("caveat: the corpus was written with the rules; the real-code review is the independent check")
    return 0 if precision >= PRECISION_GOAL and recall >= RECALL_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
