"""Claim: on real fix commits of this class, the audit flags the file before the fix and not after.

bench/facts/fix_commits.json lists fix commits from public repositories (not those of the
real-code evaluation), each with the file it fixed and the rule(s) that file must trigger at the
fix's parent commit and must not trigger at the fix commit, labelled from the diff before any run.
The folder given as ``scope`` (or the whole tree) is audited at both commits, so project facts
(a body limit set in another module) count. Pass a directory of local checkouts (``owner+name``);
repositories not found there are skipped with a message.

Run: ``python bench/bench_audit_fixes.py CHECKOUTS [--verbose]`` (exit 1 when a fix is not both
flagged before and clean after; 0 with a message when no checkout is there).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _realcode import checkout_of, checkouts_args, load, tree_at

from hmacguard.audit import audit


def _rules_in(tree: Path, file: str) -> set[str]:
    result = audit([tree])
    found = set()
    for f in result.findings:
        path = Path(f.location.path or "").resolve().relative_to(tree.resolve()).as_posix()
        if path == file:
            found.add(f.rule)
    return found


def _parent(checkout: Path, commit: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", f"{commit}^"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def main() -> int:
    args = checkouts_args("bench_audit_fixes", __doc__.split("\n")[0])
    if args is None:
        return 0
    facts = load("fix_commits.json")
    rows = []
    for fix in facts["fixes"]:
        checkout = checkout_of(args.checkouts, fix["repo"])
        parent = _parent(checkout, fix["fix"]) if checkout is not None else None
        if checkout is None or parent is None:
            print(
                f"skip {fix['repo']} {fix['fix'][:10]}: no checkout with that commit under {args.checkouts}"
            )
            continue
        with tree_at(checkout, parent, fix["scope"]) as before_tree:
            before = _rules_in(before_tree, fix["file"]) if before_tree else set()
        with tree_at(checkout, fix["fix"], fix["scope"]) as after_tree:
            after = _rules_in(after_tree, fix["file"]) if after_tree else set()
        wanted = set(fix["rules"])
        flagged = wanted <= before
        clean = not (wanted & after)
        rows.append((fix, flagged, clean, before & wanted, after & wanted))
    if not rows:
        print(f"no checkout of the fix repositories under {args.checkouts}: nothing scored")
        return 0
    print(f"{'repository':<38} {'fix':<10} {'file':<52} {'before':>6} {'after':>6}")
    for fix, flagged, clean, before, after in rows:
        name = fix["file"] if len(fix["file"]) <= 52 else "..." + fix["file"][-49:]
        verdict = f"{'yes' if flagged else 'NO':>6} {'clean' if clean else 'FLAGGED':>6}"
        print(f"{fix['repo']:<38} {fix['fix'][:10]:<10} {name:<52} {verdict}")
        if args.verbose and not (flagged and clean):
            print(f"    wanted {sorted(fix['rules'])}; before {sorted(before)}; after {sorted(after)}")
    commits = {f["fix"] for f, *_ in rows}
    both_commits = {f["fix"] for f, *_ in rows} - {f["fix"] for f, fl, cl, *_ in rows if not (fl and cl)}
    both_files = sum(1 for _, fl, cl, *_ in rows if fl and cl)
    print(f"fixed files flagged before and clean after: {both_files}/{len(rows)}")
    print(f"fix commits with every fixed file both: {len(both_commits)}/{len(commits)} (goal: all)")
    return 0 if len(both_commits) == len(commits) else 1


if __name__ == "__main__":
    sys.exit(main())
