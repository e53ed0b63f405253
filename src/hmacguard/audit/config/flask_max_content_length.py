"""Flask app that reads request bodies with no ``MAX_CONTENT_LENGTH``.

**What it finds.** A ``Flask(...)`` application in a project that reads request bodies
(``request.get_data()``, ``request.data``, ``request.get_json()``, ``request.stream``) while no
module sets ``MAX_CONTENT_LENGTH`` (``app.config[...]``, ``config.update(...)``, a config class
attribute, or Flask 3.1's ``request.max_content_length``). Also any ``MAX_CONTENT_LENGTH`` set
to ``None`` or above 10 MiB.

**Why it matters.** Flask's default is no limit: every body read is as large as the client makes
it, chunked bodies included. Werkzeug ≥ 2.3 enforces ``MAX_CONTENT_LENGTH`` both on Content-Length
and while streaming (pallets/werkzeug#2620), which makes it the one switch that bounds every read.

**Not reported.** Apps whose configuration is loaded from a file, object or environment the audit
cannot read (``from_object``, ``from_pyfile``, ``from_prefixed_env``...): the limit may be there.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.model import SIZE_THRESHOLD, finding_at, mib
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="flask-max-content-length",
    title="Flask app reads request bodies with no MAX_CONTENT_LENGTH (or too high a one)",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Set app.config['MAX_CONTENT_LENGTH'] to what the largest legitimate payload needs "
    "(1 MiB is ample for webhooks) and run Werkzeug ≥ 2.3, which enforces it while streaming.",
    trigger=any_of("Flask", "MAX_CONTENT_LENGTH", "max_content_length"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    path = ctx.file.path
    reads = facts.flask_reads_for(path)
    if facts.flask_cap(path) == "unset" and reads:
        first = reads[0]
        for app in facts.flask_apps:
            if app.path != ctx.file.path:
                continue
            yield finding_at(
                "flask-max-content-length",
                ctx.file.source,
                app.line,
                f"This Flask app reads request bodies ({first.what} at {first.path}:{first.line}"
                f"{' and elsewhere' if len(reads) > 1 else ''}) and no "
                "MAX_CONTENT_LENGTH is set: any body size is accepted.",
                values={"reads": len(reads), "first_read": f"{first.path}:{first.line}"},
                stack="Flask: app.config['MAX_CONTENT_LENGTH'] = 1024 * 1024",
            )
    for setting in facts.flask_limits:
        if setting.path != ctx.file.path or setting.state not in ("disabled", "high"):
            continue
        if setting.state == "disabled":
            message = f"{setting.name} = {setting.value!r} means no body limit."
            severity = Severity.HIGH
        else:
            size = setting.value if isinstance(setting.value, int | float) else 0
            message = (
                f"{setting.name} = {mib(size)} is far above what a webhook needs "
                f"(over {mib(SIZE_THRESHOLD)})."
            )
            severity = Severity.MEDIUM
        yield finding_at(
            "flask-max-content-length",
            ctx.file.source,
            setting.line,
            message,
            severity=severity,
            values={"setting": setting.name, "value": repr(setting.value)},
        )
