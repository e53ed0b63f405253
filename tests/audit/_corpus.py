"""The labelled corpus: files with their expectations inline, grouped into projects.

``# expect: rule-id[, rule-id]`` (``//`` in JavaScript) on a line says the audit must report that
rule on that line; ``# ok: rule-id`` marks a near miss that it must not report. Every file directly
in a category folder is a project of its own; a sub-folder is one project (settings beside views,
a lock file beside ``asgi.py``). Shared by tests/audit/test_corpus.py and
bench/bench_audit_accuracy.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
CATEGORIES = ("python", "javascript", "config/nginx", "config/requirements")
_MARK = re.compile(r"(?:#|//)\s*(expect|ok):\s*([a-z0-9][a-z0-9, -]*[a-z0-9])")


@dataclass(frozen=True)
class Project:
    """One audit unit and what it must (and must not) produce, as (path, line, rule)."""

    path: Path
    expected: frozenset[tuple[str, int, str]]
    near_misses: frozenset[tuple[str, int, str]]

    @property
    def name(self) -> str:
        return self.path.relative_to(CORPUS).as_posix()


def _marks(file: Path) -> tuple[set[tuple[str, int, str]], set[tuple[str, int, str]]]:
    expected: set[tuple[str, int, str]] = set()
    near: set[tuple[str, int, str]] = set()
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        for kind, rules in _MARK.findall(line):
            for rule in (r.strip() for r in rules.split(",")):
                (expected if kind == "expect" else near).add((file.name, number, rule))
    return expected, near


def projects() -> list[Project]:
    out = []
    for category in CATEGORIES:
        for entry in sorted((CORPUS / category).iterdir()):
            if entry.name.startswith((".", "__")):
                continue
            files = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
            expected: set[tuple[str, int, str]] = set()
            near: set[tuple[str, int, str]] = set()
            for file in files:
                e, n = _marks(file)
                expected |= e
                near |= n
            out.append(Project(entry, frozenset(expected), frozenset(near)))
    return out


def found(project: Project) -> frozenset[tuple[str, int, str]]:
    """What the audit reports for ``project``, in the corpus's (file name, line, rule) terms."""
    from hmacguard.audit import audit

    result = audit([project.path])
    return frozenset(
        (Path(f.location.path or "").name, f.location.line or 0, f.rule) for f in result.findings
    )
