"""The audit engine: files -> front ends -> project facts -> rules -> suppressions -> result.

1. **Discover** files under each path: Python, JavaScript/TypeScript, nginx ``.conf`` files,
   requirements and lock files, deployment files (Dockerfile, Procfile, compose, ``*.sh``).
   Vendored, minified and generated code is skipped and counted, ``.gitignore`` is honoured
   (:mod:`.discovery`); a path given explicitly is always audited.
2. **Pre-filter**: a file whose text contains no rule's trigger word is counted but not parsed.
3. **Parse** each remaining file with its front end (Python of any syntax version: see
   :mod:`.python.modern_syntax`). A file that does not parse is reported as a diagnostic and
   makes the result *incomplete*; it never stops the run, and never passes for clean.
4. **Facts**: every parsed Python file contributes project-wide facts (body limits, apps,
   middleware, function summaries) before any rule runs.
5. **Rules** run per file. A rule that raises becomes a ``rule-error`` diagnostic for that file;
   the other rules and files go on.
6. **Suppressions**: ``# hmacguard: ignore[rule-id]`` (``//`` in JavaScript) on the finding's line,
   or alone on the line above, drops that rule's findings there; they are counted, not lost. A
   suppression that names no rule is ignored and reported.
7. **Test code**: findings in test files are kept apart (``test_findings``) unless asked for.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from hmacguard.audit.config.context import NginxContext, RequirementsContext
from hmacguard.audit.config.deployment import parse_deployment
from hmacguard.audit.config.nginx import (
    NginxParseError,
    looks_like_nginx,
    parse_nginx,
    proxy_limits,
)
from hmacguard.audit.config.requirements import RequirementsFile, parse_requirements
from hmacguard.audit.discovery import ENVIRONMENT_DIRS, VENDORED_DIRS, Candidate, Discovery
from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import JsParseError, parse_javascript
from hmacguard.audit.model import AuditResult, Diagnostic, DiagnosticKind, SourceFile
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.facts import FACT_WORDS, PythonFacts
from hmacguard.audit.python.frontend import PyFile, parse_python
from hmacguard.audit.registry import AUDIT_RULES, AuditRule, Language
from hmacguard.errors import ConfigurationError
from hmacguard.findings import Finding

__all__ = ["SKIPPED_DIRS", "audit", "discover", "is_test_path"]

#: Folders never entered while walking (entered when given explicitly as a path).
SKIPPED_DIRS = ENVIRONMENT_DIRS | VENDORED_DIRS
_SUPPRESSION = re.compile(r"hmacguard:\s*ignore\b(\[([^\]]*)\])?")
_PROXY_WORDS = ("proxy_pass", "uwsgi_pass", "fastcgi_pass", "grpc_pass")
_MAX_FILE_BYTES = 4 * 1024 * 1024
#: Findings of one rule in one file beyond which the rest are counted, not listed.
MAX_FINDINGS_PER_RULE_AND_FILE = 100  # a generated bundle larger than this is not source to review
_TEST_DIRS = frozenset(
    {"tests", "test", "__tests__", "testing", "spec", "specs", "fixtures", "__fixtures__", "e2e", "cypress"}
)
_TEST_NAME = re.compile(r"^(test_.*\.py|.*_test\.py|conftest\.py|.*\.(test|spec)\.[cm]?[jt]sx?)$")


def is_test_path(path: str) -> bool:
    """Whether a file is test code (a tests folder, ``test_*.py``, ``*.spec.ts``...)."""
    parts = PurePath(path).parts
    return any(p in _TEST_DIRS for p in parts[:-1]) or bool(parts and _TEST_NAME.match(parts[-1]))


def discover(
    paths: Sequence[str | os.PathLike[str]],
    *,
    exclude: Sequence[str] = (),
    include_vendored: bool = False,
) -> Iterator[Candidate]:
    """Every auditable file under ``paths``, each once, in a stable order (see :mod:`.discovery`)."""
    return Discovery(exclude=exclude, include_vendored=include_vendored).candidates(paths)


def _shown(path: Path) -> str:
    """The path as reports show it: relative to the working directory when under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _read(candidate: Candidate) -> SourceFile | Diagnostic:
    shown = _shown(candidate.path)
    try:
        if candidate.path.stat().st_size > _MAX_FILE_BYTES:
            return Diagnostic(DiagnosticKind.READ_ERROR, shown, "larger than 4 MiB: skipped")
        data = candidate.path.read_bytes()
    except OSError as exc:
        return Diagnostic(DiagnosticKind.READ_ERROR, shown, exc.strerror or str(exc))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if candidate.language is not Language.PYTHON:
            return Diagnostic(DiagnosticKind.READ_ERROR, shown, "not UTF-8 text: skipped")
        import io
        import tokenize

        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            text = data.decode(encoding)
        except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
            return Diagnostic(DiagnosticKind.READ_ERROR, shown, f"cannot decode: {exc}")
    return SourceFile(shown, text, str(candidate.path))


class _Suppressions:
    """``hmacguard: ignore[rule-a, rule-b]`` comments of one file, by line."""

    def __init__(self, source: SourceFile, diagnostics: list[Diagnostic]) -> None:
        self.by_line: dict[int, set[str]] = {}
        if "hmacguard:" not in source.text:
            return
        lines = source.lines
        for number, line in enumerate(lines, 1):
            for m in _SUPPRESSION.finditer(line):
                names = {n.strip() for n in (m.group(2) or "").split(",") if n.strip()}
                if not names:
                    diagnostics.append(
                        Diagnostic(
                            DiagnosticKind.BAD_SUPPRESSION,
                            source.path,
                            "suppression must name the rule: hmacguard: ignore[rule-id]",
                            line=number,
                        )
                    )
                    continue
                self.by_line.setdefault(number, set()).update(names)
                # A comment alone on its line also covers the next line.
                if line.strip().startswith(("#", "//", "/*")):
                    self.by_line.setdefault(number + 1, set()).update(names)

    def covers(self, finding: Finding) -> bool:
        line = finding.location.line
        return line is not None and finding.rule in self.by_line.get(line, ())


@dataclass
class _Parsed:
    source: SourceFile
    language: Language
    context: object
    test_code: bool = False


def audit(
    paths: Sequence[str | os.PathLike[str]],
    *,
    rules: Iterable[str] | None = None,
    exclude: Sequence[str] = (),
    include_vendored: bool = False,
    include_tests: bool = False,
) -> AuditResult:
    """Audit every file under ``paths`` with the registered rules (or only ``rules``).

    ``exclude``: ``.gitignore``-style patterns of paths to leave out. ``include_vendored``: also
    audit vendored folders and minified or generated files (skipped and counted by default).
    ``include_tests``: count findings in test code as findings (by default they are kept apart
    in ``AuditResult.test_findings``, so test fixtures do not fail a CI run).
    """
    import hmacguard.audit.rules  # noqa: F401  (registers every rule)

    selected = _select(rules)
    started = time.perf_counter()
    diagnostics: list[Diagnostic] = []
    parsed: list[_Parsed] = []
    facts = PythonFacts()
    requirements: list[RequirementsFile] = []
    files = lines = analysed = 0
    triggers = {lang: [r for r in selected if r.language is lang] for lang in Language}
    sink = _Sink(triggers, diagnostics)
    discovery = Discovery(exclude=exclude, include_vendored=include_vendored)
    for candidate in discovery.candidates(paths):
        source = _read(candidate)
        if isinstance(source, Diagnostic):
            diagnostics.append(source)
            continue
        language = candidate.language
        if language is Language.NGINX and not looks_like_nginx(candidate.path, source.text):
            continue
        if language is Language.DEPLOYMENT:
            deployment = parse_deployment(source)
            if deployment.servers:
                facts.add_deployment(deployment)
            continue
        files += 1
        lines += source.text.count("\n") + (0 if source.text.endswith("\n") else 1)
        if not any(r.trigger(source.text) for r in triggers[language]) and not _holds_facts(
            language, source.text
        ):
            continue
        context = _parse(source, language, facts, requirements, diagnostics)
        if context is None:
            continue
        analysed += 1
        item = _Parsed(source, language, context, not include_tests and is_test_path(candidate.relative))
        if language is Language.JAVASCRIPT:
            # JavaScript rules need no project facts: run them now and let the tree go, so memory
            # holds one syntax tree at a time, however many files the project has.
            sink.apply(item, context)
        else:
            parsed.append(item)
    for item in parsed:
        context = item.context
        if item.language is Language.REQUIREMENTS and isinstance(context, RequirementsFile):
            context = RequirementsContext(context, facts, requirements)
        elif item.language is Language.PYTHON and isinstance(context, PyFile):
            context = PyContext(context, facts)
        sink.apply(item, context)
    order = _order_key
    return AuditResult(
        findings=tuple(sorted(sink.findings, key=order)),
        suppressed=tuple(sorted(sink.suppressed, key=order)),
        diagnostics=tuple(diagnostics),
        files=files,
        files_parsed=analysed,
        lines=lines,
        seconds=time.perf_counter() - started,
        rules=tuple(r.id for r in selected),
        test_findings=tuple(sorted(sink.in_tests, key=order)),
        skipped=dict(sorted(discovery.skipped.items())),
        skipped_examples={k: tuple(v) for k, v in sorted(discovery.examples.items())},
    )


class _Sink:
    """Runs a file's rules and sorts their findings: reported, suppressed, or in test code."""

    def __init__(self, triggers: dict[Language, list[AuditRule]], diagnostics: list[Diagnostic]) -> None:
        self.triggers = triggers
        self.diagnostics = diagnostics
        self.findings: list[Finding] = []
        self.suppressed: list[Finding] = []
        self.in_tests: list[Finding] = []

    def apply(self, item: _Parsed, context: object) -> None:
        marks = _Suppressions(item.source, self.diagnostics)
        for rule in self.triggers[item.language]:
            if not rule.trigger(item.source.text):
                continue
            for finding in _run(rule, context, item.source, self.diagnostics):
                if marks.covers(finding):
                    self.suppressed.append(finding)
                elif item.test_code:
                    self.in_tests.append(finding)
                else:
                    self.findings.append(finding)


def _holds_facts(language: Language, text: str) -> bool:
    """Whether a file no rule needs must still be parsed for what it tells the others."""
    if language is Language.PYTHON:
        return any(w in text for w in FACT_WORDS)
    if language is Language.NGINX:
        return any(w in text for w in _PROXY_WORDS)
    return False


def _order_key(f: Finding) -> tuple[str, int, int, str]:
    loc = f.location
    return (loc.path or "", loc.line or 0, loc.column or 0, f.rule)


def _select(rules: Iterable[str] | None) -> list[AuditRule]:
    if rules is None:
        return list(AUDIT_RULES.values())
    chosen = []
    for rule_id in rules:
        if rule_id not in AUDIT_RULES:
            raise ConfigurationError(f"unknown audit rule {rule_id!r} (see `hmacguard rules`)")
        chosen.append(AUDIT_RULES[rule_id])
    return chosen


def _parse(
    source: SourceFile,
    language: Language,
    facts: PythonFacts,
    requirements: list[RequirementsFile],
    diagnostics: list[Diagnostic],
) -> object | None:
    try:
        if language is Language.PYTHON:
            py = parse_python(source)
            facts.add(py)
            return py
        if language is Language.JAVASCRIPT:
            return JsContext(parse_javascript(source))
        if language is Language.NGINX:
            nginx = parse_nginx(source)
            facts.proxy_limits.extend(proxy_limits(nginx))
            return NginxContext(nginx)
        req = parse_requirements(source)
        requirements.append(req)
        return req
    except SyntaxError as exc:
        detail, line = exc.msg, exc.lineno
    except (JsParseError, NginxParseError) as exc:
        detail, line = str(exc), exc.line
    except (ValueError, RecursionError) as exc:
        detail, line = f"{type(exc).__name__}: {exc}", None
    diagnostics.append(
        Diagnostic(DiagnosticKind.PARSE_ERROR, source.path, f"does not parse, skipped: {detail}", line=line)
    )
    return None


def _run(
    rule: AuditRule, context: object, source: SourceFile, diagnostics: list[Diagnostic]
) -> list[Finding]:
    """The rule's findings on one file; a crash becomes a diagnostic and no findings."""
    try:
        found: list[Finding] = []
        for finding in rule.run(context):
            found.append(finding)
            if len(found) >= MAX_FINDINGS_PER_RULE_AND_FILE:
                # No hand-written file has this many of one flaw; a bundle can have thousands,
                # and listing them costs time and memory without telling anyone more.
                diagnostics.append(
                    Diagnostic(
                        DiagnosticKind.TRUNCATED,
                        source.path,
                        f"more than {MAX_FINDINGS_PER_RULE_AND_FILE} findings; the rest are not listed",
                        rule=rule.id,
                    )
                )
                break
        return found
    except Exception as exc:  # a broken rule must not stop the audit of everything else
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.RULE_ERROR,
                source.path,
                f"rule crashed: {type(exc).__name__}: {exc}",
                rule=rule.id,
            )
        )
        return []
