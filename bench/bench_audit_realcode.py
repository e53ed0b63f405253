"""Claim: on 20 public webhook-receiving code bases labelled by hand before any run, the audit
reaches recall >= 0.9 and precision >= 0.9 overall, and JavaScript/TypeScript recall >= 0.85.

The labels (bench/facts/realcode_labels.json) give, per code base and commit, each flaw (file,
line, rule, reason) and each correct receiver. A finding matches a flaw when file and rule agree
and the line is within 2; every other finding counts against precision (findings in test code,
which the audit keeps apart by default, are not counted, as in CI). The code is not committed:
pass a directory of local checkouts (one per repository, named ``owner+name``); code bases not
found there are skipped with a message.

Run: ``python bench/bench_audit_realcode.py CHECKOUTS [--verbose]`` (exit 1 when a goal is missed,
0 with a message when no checkout is there).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _realcode import checkout_of, checkouts_args, language_of, load, tree_at

from hmacguard.audit import audit

RECALL_GOAL = PRECISION_GOAL = 0.9
JS_RECALL_GOAL = 0.85
LINE_SLACK = 2


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def score(root: Path, verbose: bool) -> int:
    facts = load("realcode_labels.json")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    scored = 0
    rows = []
    for base in facts["code_bases"]:
        checkout = checkout_of(root, base["repo"])
        if checkout is None:
            print(f"skip {base['repo']}: no checkout under {root}")
            continue
        with tree_at(checkout, base["commit"]) as tree:
            if tree is None:
                print(f"skip {base['repo']}: commit {base['commit'][:12]} not in the checkout")
                continue
            started = time.perf_counter()
            result = audit([tree])
            seconds = time.perf_counter() - started
            found = [
                (
                    Path(f.location.path or "").resolve().relative_to(tree.resolve()).as_posix(),
                    f.location.line or 0,
                    f.rule,
                    f.message,
                )
                for f in result.findings
            ]
        scored += 1
        flaws = [(x["file"], x["line"], x["rule"]) for x in base["flaws"]]
        matched: set[int] = set()
        counts = Counter()
        for path, line, rule, message in found:
            hit = next(
                (
                    i
                    for i, (f, n, r) in enumerate(flaws)
                    if i not in matched and f == path and r == rule and abs(n - line) <= LINE_SLACK
                ),
                None,
            )
            lang = language_of(path)
            if hit is None:
                fp[lang] += 1
                counts["fp"] += 1
                if verbose:
                    print(f"  FP {base['repo']} {path}:{line} {rule}: {message[:100]}")
            else:
                matched.add(hit)
                tp[lang] += 1
                counts["tp"] += 1
        for i, (path, line, rule) in enumerate(flaws):
            if i not in matched:
                fn[language_of(path)] += 1
                counts["fn"] += 1
                if verbose:
                    print(f"  FN {base['repo']} {path}:{line} {rule}")
        rows.append((base, len(flaws), len(base["correct"]), counts, seconds, result))
    if not scored:
        print(f"no checkout of the labelled code bases under {root}: nothing scored")
        return 0
    print(
        f"{'code base':<42} {'frameworks':<22} {'flaws':>5} {'ok':>3} {'tp':>3} {'fp':>3} {'fn':>3} {'s':>6}"
    )
    for base, flaws, correct, c, seconds, _ in rows:
        print(
            f"{base['repo']:<42} {','.join(base['frameworks']):<22} {flaws:>5} {correct:>3} "
            f"{c['tp']:>3} {c['fp']:>3} {c['fn']:>3} {seconds:>6.2f}"
        )
    verdict = 0
    for label, keys in (
        ("overall", ("python", "javascript")),
        ("python", ("python",)),
        ("javascript/typescript", ("javascript",)),
    ):
        t = sum(tp[k] for k in keys)
        f = sum(fp[k] for k in keys)
        n = sum(fn[k] for k in keys)
        recall, precision = _ratio(t, t + n), _ratio(t, t + f)
        print(f"{label:<22} recall {recall:.2f} ({t}/{t + n})  precision {precision:.2f} ({t}/{t + f})")
        if label == "overall" and (recall < RECALL_GOAL or precision < PRECISION_GOAL):
            verdict = 1
        if label.startswith("javascript") and recall < JS_RECALL_GOAL:
            verdict = 1
    print(f"goals: recall >= {RECALL_GOAL}, precision >= {PRECISION_GOAL}, JS/TS recall >= {JS_RECALL_GOAL}")
    return verdict


def main() -> int:
    args = checkouts_args("bench_audit_realcode", __doc__.split("\n")[0])
    if args is None:
        return 0
    return score(args.checkouts, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
