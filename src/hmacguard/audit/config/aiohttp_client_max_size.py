"""aiohttp ``client_max_size`` disabled or set far too high.

**What it finds.** ``web.Application(client_max_size=...)`` with ``0``/``None`` or a value above
10 MiB.

**Why it matters.** ``client_max_size`` (1 MiB by default) is what makes ``await request.read()``,
``text()``, ``json()`` and ``post()`` refuse oversized bodies with 413. Raising it lets every such
read hold that much per request.

**Not reported.** The default, and values of 10 MiB or less.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.model import finding_at, mib
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="aiohttp-client-max-size",
    title="aiohttp client_max_size disabled or above 10 MiB",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Keep client_max_size at aiohttp's 1 MiB default or what the largest legitimate "
    "payload needs.",
    trigger=any_of("client_max_size"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for setting in ctx.facts.aiohttp_limits:
        if setting.path != ctx.file.path or setting.state not in ("disabled", "high"):
            continue
        if setting.state == "disabled":
            message = f"client_max_size={setting.value!r} disables aiohttp's body limit."
            severity = Severity.HIGH
        else:
            size = setting.value if isinstance(setting.value, int | float) else 0
            message = f"client_max_size={mib(size)} lets each request hold that much in memory."
            severity = Severity.MEDIUM
        yield finding_at(
            "aiohttp-client-max-size",
            ctx.file.source,
            setting.line,
            message,
            severity=severity,
            values={"value": repr(setting.value)},
        )
