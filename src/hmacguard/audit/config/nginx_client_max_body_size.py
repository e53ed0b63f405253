"""nginx ``client_max_body_size`` set to 0 (unlimited) or above 10 MiB.

**What it finds.** A ``client_max_body_size`` directive, in any ``http``, ``server`` or
``location`` block, whose value is ``0`` (nginx then does not check the body size at all) or
larger than 10 MiB (``10m``).

**Why it matters.** nginx's limit (1 MiB by default) is checked against Content-Length and, for
chunked requests, while the body arrives; nginx answers 413 before the application sees a byte.
It is the cheapest cap a webhook endpoint can have, and seed 000 names it as the configuration to
check. ``0`` switches it off; a large value lets that much reach (and be buffered by) the
application.

**Not reported.** Values of 10 MiB or less; a missing directive (nginx's default, 1 MiB, applies).
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.config.context import NginxContext
from hmacguard.audit.config.nginx import nginx_size
from hmacguard.audit.model import SIZE_THRESHOLD, finding_at
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="nginx-client-max-body-size",
    title="nginx client_max_body_size is 0 (unlimited) or above 10 MiB",
    language=Language.NGINX,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Set client_max_body_size to what the largest legitimate payload needs (1m, the "
    "default, is ample for webhooks), at least in the location that serves the endpoint.",
    trigger=any_of("client_max_body_size"),
)
def check(ctx: NginxContext) -> Iterator[Finding]:
    for directive in ctx.file.named("client_max_body_size"):
        if not directive.args:
            continue
        value = directive.args[0]
        size = nginx_size(value)
        where = " > ".join(directive.context) or "main"
        if size == 0:
            message = f"client_max_body_size 0 in {where} turns off nginx's body-size check."
            severity = Severity.HIGH
        elif size is not None and size > SIZE_THRESHOLD:
            message = (
                f"client_max_body_size {value} in {where} lets bodies up to {value} through "
                "to the application (over 10m)."
            )
            severity = Severity.MEDIUM
        else:
            continue
        yield finding_at(
            "nginx-client-max-body-size",
            ctx.file.source,
            directive.line,
            message,
            severity=severity,
            values={"value": value, "bytes": size, "context": where},
            stack="nginx: client_max_body_size 1m;",
        )
