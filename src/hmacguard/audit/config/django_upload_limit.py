"""Django's request-body limit disabled or set far too high.

**What it finds.** ``DATA_UPLOAD_MAX_MEMORY_SIZE = None`` (no limit at all) or a value above
10 MiB, in a settings module (a module-level assignment) or passed to ``settings.configure(...)``
or ``override_settings(...)``.

**Why it matters.** ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default) is what makes
``request.body`` refuse an oversized Content-Length before reading it. ``None`` lets every view that
touches ``request.body`` read any size into memory; a webhook receiver needs well under 1 MiB.
Note that the setting does not cover ``request.read()``, and under ASGI some Django versions let a
missing Content-Length bypass it (see ``django-asgi-body-limit-bypass``).

**Not reported.** Values of 10 MiB or less, and values the audit cannot compute (read from the
environment).
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.model import SIZE_THRESHOLD, finding_at, mib
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="django-upload-limit",
    title="Django DATA_UPLOAD_MAX_MEMORY_SIZE disabled or above 10 MiB",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Keep DATA_UPLOAD_MAX_MEMORY_SIZE at Django's default (2.5 MB) or set it to what "
    "the largest legitimate payload needs; enforce the same limit at the web server "
    "(nginx client_max_body_size).",
    trigger=any_of("DATA_UPLOAD_MAX_MEMORY_SIZE"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for setting in ctx.facts.django_limits:
        if setting.path != ctx.file.path:
            continue
        if setting.state == "disabled":
            message = (
                f"DATA_UPLOAD_MAX_MEMORY_SIZE = {setting.value!r} disables Django's body limit: "
                "request.body reads any size into memory."
            )
            severity = Severity.HIGH
        elif setting.state == "high" and isinstance(setting.value, int | float):
            message = (
                f"DATA_UPLOAD_MAX_MEMORY_SIZE = {mib(setting.value)} lets request.body hold "
                f"bodies far above what a webhook needs (over {mib(SIZE_THRESHOLD)})."
            )
            severity = Severity.MEDIUM
        else:
            continue
        yield finding_at(
            "django-upload-limit",
            ctx.file.source,
            setting.line,
            message,
            severity=severity,
            values={"setting": setting.name, "value": _json(setting.value)},
            stack="Django: DATA_UPLOAD_MAX_MEMORY_SIZE in settings.py",
        )


def _json(value: object) -> int | float | str | None:
    if value is None or isinstance(value, int | float):
        return value
    return repr(value)
