"""Django version whose ASGI handler lets a missing Content-Length bypass the body limit.

**What it finds.** An exact Django pin (requirements, lock file, pyproject) in a project that
runs under ASGI (an ``asgi.py``, ``get_asgi_application()``, or an ASGI server such as uvicorn,
daphne, hypercorn or granian among its requirements), when that version is affected by:

- CVE-2026-33034 (GHSA-933h-hp56-hf7m, PYSEC-2026-49): ASGI requests with a missing or
  understated Content-Length could bypass ``DATA_UPLOAD_MAX_MEMORY_SIZE`` when reading
  ``HttpRequest.body``, loading an unbounded body into memory. Fixed in 4.2.30, 5.2.13 and 6.0.4;
  unsupported series (3.x, 4.0, 4.1, 5.0, 5.1) were not evaluated and may be affected (reported
  with medium confidence).
- CVE-2026-5766 (GHSA-w26r-rmm8-9c29, PYSEC-2026-54, severity "low" per Django): the same bypass
  of ``FILE_UPLOAD_MAX_MEMORY_SIZE``. Fixed in 5.2.14 and 6.0.5.

**Why it matters.** On an affected version a chunked request to any view that reads
``request.body`` is read whole, whatever ``DATA_UPLOAD_MAX_MEMORY_SIZE`` says.

**Not reported.** Version ranges, ``==3.2.*`` included (only exact pins say what runs), and
projects with no sign of ASGI (under WSGI Django reads a body without Content-Length as empty).
When the repository's Dockerfile, Procfile, compose file or start script says how the app is
served, that decides: a project whose only ``asgi.py`` is ``startproject``'s default while its
start commands run gunicorn on the WSGI module is a WSGI project.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.config.context import RequirementsContext
from hmacguard.audit.config.requirements import version_tuple
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

Version = tuple[int, ...]
# (introduced, fixed) ranges; a None "fixed" marks a series that was not evaluated.
_CVE_2026_33034: tuple[tuple[Version, Version | None], ...] = (
    ((3, 0, 0), None),  # 3.0 - 4.1: unsupported, "may also be affected"
    ((4, 2, 0), (4, 2, 30)),
    ((5, 0, 0), None),  # 5.0 - 5.1: unsupported
    ((5, 2, 0), (5, 2, 13)),
    ((6, 0, 0), (6, 0, 4)),
)
_CVE_2026_5766: tuple[tuple[Version, Version], ...] = (((5, 2, 0), (5, 2, 14)), ((6, 0, 0), (6, 0, 5)))


def _affected(version: Version) -> tuple[bool, bool, bool]:
    """(33034 confirmed, 33034 possible on an unevaluated series, 5766 confirmed)."""
    confirmed = possible = False
    starts = [start for start, _ in _CVE_2026_33034]
    for i, (start, fixed) in enumerate(_CVE_2026_33034):
        end = starts[i + 1] if i + 1 < len(starts) else (99, 0, 0)
        if start <= version < end:
            if fixed is None:
                possible = True
            elif version < fixed:
                confirmed = True
    files = any(start <= version < fixed for start, fixed in _CVE_2026_5766)
    return confirmed, possible, files


@audit_rule(
    id="django-asgi-body-limit-bypass",
    title="Django version whose ASGI handler lets a missing Content-Length bypass the body limit",
    language=Language.REQUIREMENTS,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(770,),
    remediation="Upgrade Django to 4.2.30, 5.2.14 or 6.0.5 or later, and enforce a body limit at "
    "the web server too (nginx client_max_body_size).",
    trigger=any_of("django", "Django"),
)
def check(ctx: RequirementsContext) -> Iterator[Finding]:
    pins = ctx.file.find("django")
    if not pins:
        return
    evidence = ctx.asgi_evidence()
    if not evidence:
        return
    for pin in pins:
        confirmed, possible, files = _affected(version_tuple(pin.version))
        if not (confirmed or possible or files):
            continue
        advisories = []
        if confirmed or possible:
            advisories.append("CVE-2026-33034")
        if files:
            advisories.append("CVE-2026-5766")
        if confirmed:
            severity, confidence = Severity.HIGH, "high"
            detail = "DATA_UPLOAD_MAX_MEMORY_SIZE can be bypassed"
        elif possible:
            severity, confidence = Severity.HIGH, "medium"
            detail = (
                "an unsupported series that was not evaluated and may let requests bypass "
                "DATA_UPLOAD_MAX_MEMORY_SIZE"
            )
        else:
            severity, confidence = Severity.LOW, "high"
            detail = "FILE_UPLOAD_MAX_MEMORY_SIZE can be bypassed"
        yield finding_at(
            "django-asgi-body-limit-bypass",
            ctx.file.source,
            pin.line,
            f"Django {pin.version} under ASGI: {detail} by a request with a missing or "
            f"understated Content-Length ({', '.join(advisories)}).",
            severity=severity,
            confidence=confidence,
            values={
                "version": pin.version,
                "advisories": ", ".join(advisories),
                "asgi": "; ".join(evidence[:3]),
            },
        )
