"""``--format html``: one self-contained page per report (scan, audit, leaks).

The page loads nothing: CSS is inline, plots are inline SVG drawn by matplotlib (see
:mod:`hmacguard.report.html.plots`), there is no script. Links (CWE entries) are plain anchors a
reader may follow; nothing is fetched when the page opens. Templates live in ``report/templates/``
(Jinja2, autoescaped); this module turns each detector's result into the plain values they show.

Entry points, each returning the whole document as a string::

    render_html(result)             # any result
    render_scan_html(reports)       # several scans on one page (``make demo``'s before and after)

jinja2 and matplotlib come with ``pip install 'hmacguard[html]'``; without them these raise
ConfigurationError (one line, exit 2 on the command line).
"""

from __future__ import annotations

import datetime
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from hmacguard.audit.model import AuditResult
from hmacguard.errors import ConfigurationError
from hmacguard.findings import Finding, Result, Severity
from hmacguard.leaks.analysis import LeakReport, format_bytes
from hmacguard.report.html import plots
from hmacguard.report.version import tool_version
from hmacguard.scan.model import ScanReport
from hmacguard.scan.openapi import OpenApiScan
from hmacguard.scan.probes.base import size_text

__all__ = ["render_audit_html", "render_html", "render_leaks_html", "render_scan_html"]

_TEMPLATES = Path(__file__).parent / "templates"
_SIZE_KEYS = ("size", "bytes", "accepted", "refused", "limit", "rss", "growth")


def _environment() -> Any:
    try:
        import jinja2
        import matplotlib  # noqa: F401  (checked here so the error names both)
    except ImportError as exc:
        raise ConfigurationError(
            f"HTML reports need jinja2 and matplotlib ({exc.name} is missing): pip install 'hmacguard[html]'"
        ) from None
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = lambda n: "—" if n is None else size_text(n)
    return env


def _render(template: str, **values: Any) -> str:
    env = _environment()
    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return str(env.get_template(template).render(version=tool_version(), generated=generated, **values))


def _value_text(key: str, value: Any) -> str:
    """One evidence value for people: sizes in binary units, long lists shortened."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and value >= 1024 and any(k in key for k in _SIZE_KEYS):
        return f"{size_text(value)} ({value:,} bytes)"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 160 else text[:157] + "…"
    return str(value)


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "severity": f.severity.label,
        "rule": f.rule,
        "title": f.title,
        "category": f.category.value,
        "cwe": list(f.cwe),
        "owasp": f.owasp,
        "message": f.message,
        "where": str(f.location),
        "snippet": f.location.snippet,
        # Some detectors' evidence summary is their message; saying it twice helps nobody.
        "evidence": None if f.evidence.summary == f.message else f.evidence.summary,
        "values": [(k, _value_text(k, v)) for k, v in f.evidence.values.items() if k != "series"],
        "remediation": f.remediation,
        "stack": f.stack,
        "confidence": f.confidence,
    }


def _counts(findings: Sequence[Finding]) -> list[tuple[str, int]]:
    counter = Counter(f.severity for f in findings)
    return [(s.label, counter[s]) for s in sorted(Severity, reverse=True) if counter[s]]


def _plot(title: str, svg: str | None, caption: str, missing: str) -> dict[str, Any]:
    return {"title": title, "svg": svg, "caption": caption, "missing": missing}


def _scan_plots(report: ScanReport) -> list[dict[str, Any]]:
    no_memory = "Server memory was not observed (give --pid, --metrics or --launch)."
    return [
        _plot(
            "Server memory against body size",
            plots.rss_by_size(report.measurements) if report.memory_source else None,
            "Peak RSS growth while each probe was handled. A line along the dotted diagonal holds "
            "the whole body; a flat line streams or refuses it.",
            no_memory if not report.memory_source else "No probe had a memory reading.",
        ),
        _plot(
            "Memory over the retention probe",
            plots.rss_over_retention(report.retention) if report.retention else None,
            "RSS after each round of identical requests. A leak keeps climbing; an allocator's "
            "high-water mark levels off.",
            no_memory if not report.memory_source else "The retention probe did not run (see Untested).",
        ),
        _plot(
            "Latency against body size",
            plots.latency_by_size(report.measurements),
            "Time from the first byte sent to the answer. A refusal before the body is read stays flat.",
            "No probe was answered.",
        ),
        _plot(
            "Burst timeline",
            plots.burst_timeline(report.burst) if report.burst else None,
            "Each request of the burst on its connection; red bars took over ten times the quiet latency.",
            "The burst did not run (see Untested).",
        ),
    ]


def _limits(report: ScanReport) -> list[dict[str, Any]]:
    return [
        {
            "variant": lim.variant.label,
            "accepted": lim.accepted,
            "refused": lim.refused,
            "refusal": lim.refusal.value if lim.refusal else None,
            "probes": lim.probes,
            "precise": lim.precise,
        }
        for lim in report.limits
    ]


def _measurements(report: ScanReport) -> list[dict[str, Any]]:
    rows = []
    for m in report.measurements:
        accepted = m.accepted_before_answer
        rows.append(
            {
                "phase": m.phase,
                "variant": m.variant.label,
                "size": m.size,
                "verdict": m.verdict.value,
                "status": m.exchange.status if m.exchange.status is not None else m.exchange.outcome.value,
                "read": None if accepted is None else accepted[1],
                "seconds": m.exchange.total_s,
                "rss_delta": m.rss_delta,
            }
        )
    return rows


def _enforcement(report: ScanReport) -> dict[str, Any] | None:
    e = report.enforcement
    if e is None:
        return None
    return {
        "body": "the test event" if e.body == "test-event" else "--probe-body",
        "content_type": e.content_type,
        "probes": [
            {
                "kind": p.kind.value + (f" ({p.spelling})" if p.spelling else ""),
                "target": p.target,
                "answer": p.exchange.status if p.exchange.responded else p.exchange.outcome.value,
                "accepted": p.accepted,
                "seconds": p.exchange.total_s,
            }
            for p in e.probes
        ],
    }


def _scan_view(report: ScanReport, anchor: str) -> dict[str, Any]:
    r, b = report.retention, report.burst
    retention = None
    if r is not None and r.size:
        retention = (
            f"{size_text(r.bytes_per_request)}/request over {r.answered} requests of {size_text(r.size)} "
            f"({r.bytes_per_request / r.size:.1%} of the body); later rounds "
            f"{size_text(r.late_bytes_per_request)}/request"
        )
    h, held = report.held, None
    if h is not None:
        others = ", ".join(f"{k} × {v}" for k, v in h.answered.items())
        held = (
            f"{h.held} of {h.opened} uploads of {size_text(h.size)} open at once, "
            f"{size_text(h.held_bytes)} sent and unfinished: RSS grew by {size_text(h.growth)}, "
            f"{h.growth_per_added_byte:.2f} bytes per byte sent after the first piece"
            + (f"; the others {others}" if others else "")
        )
    burst = None
    if b is not None:
        outcomes = ", ".join(f"{k} × {v}" for k, v in b.statuses.items())
        burst = (
            f"{b.requests} × {size_text(b.size)}, {b.concurrency} at a time, {b.duration_s:.2f} s: {outcomes}"
        )
        if b.rate_limit_headers:
            burst += f"; rate-limit headers {', '.join(b.rate_limit_headers)}"
    return {
        "anchor": anchor,
        "url": report.url,
        "method": report.method,
        "scheme": report.scheme,
        "signed": report.signed,
        "grade": report.grade,
        "score": report.score,
        "stack": report.stack.label,
        "clues": list(report.stack.clues),
        "started_at": report.started_at,
        "duration": report.duration_s,
        "requests": report.requests,
        "bytes_sent": report.bytes_sent,
        "memory_source": report.memory_source,
        "unavailable": report.unavailable,
        "counts": _counts(report.findings),
        "findings": [_finding(f) for f in report.findings],
        "plots": _scan_plots(report),
        "limits": _limits(report),
        "enforcement": _enforcement(report),
        "retention": retention,
        "held": held,
        "burst": burst,
        "measurements": _measurements(report),
        "untested": [(u.what, u.reason) for u in report.untested],
        "notes": list(report.notes),
    }


def render_scan_html(
    report: ScanReport | OpenApiScan | Sequence[ScanReport], *, title: str | None = None
) -> str:
    """The scan report as one HTML page. An OpenAPI scan gets an overview and a section per operation;
    several reports (e.g. ``make demo``'s vulnerable and fixed targets) get a section each."""
    if isinstance(report, ScanReport):
        scans = [_scan_view(report, "scan")]
        overview = None
        heading = title or f"hmacguard scan — {report.method} {report.url}"
    elif not isinstance(report, OpenApiScan):
        scans = [_scan_view(r, f"scan-{i}") for i, r in enumerate(report, 1)]
        if not scans:
            raise ConfigurationError("no scan report to render")
        overview = None
        heading = title or f"hmacguard scan — {len(scans)} endpoints"
    else:
        scans = [_scan_view(r, f"op-{i}") for i, r in enumerate(report.reports, 1)]
        overview = {
            "spec": report.spec.title,
            "base_url": report.base_url,
            "budget": report.budget_per_operation,
            "operations": [
                {
                    "anchor": f"op-{i}",
                    "key": op.key,
                    "signature": f"{op.signature_header} ({op.signature_source}, {op.scheme})",
                    "grade": r.grade,
                    "score": r.score,
                    "findings": len(r.findings),
                    "declared": op.declared_limit.bytes if op.declared_limit else None,
                    "verdict": c.verdict,
                    "comparison": c.message,
                }
                for i, (op, r, c) in enumerate(
                    zip(report.operations, report.reports, report.comparisons, strict=True), 1
                )
            ],
            "skipped": [(f"{s.method} {s.path}", s.reason) for s in report.skipped],
        }
        heading = title or f"hmacguard scan — {report.spec.title}"
    return _render("scan.html.j2", title=heading, scans=scans, overview=overview)


def render_audit_html(result: AuditResult, *, title: str | None = None) -> str:
    """The audit as one HTML page: findings grouped by file (worst file first), then diagnostics."""
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_file[f.location.path or "<unknown>"].append(f)
    files = [
        {"path": path, "findings": [_finding(f) for f in by_file[path]]}
        for path in sorted(by_file, key=lambda p: (-max(f.severity for f in by_file[p]), p))
    ]
    per_rule: dict[str, tuple[Severity, int]] = {}
    for f in result.findings:
        worst, n = per_rule.get(f.rule, (Severity.INFO, 0))
        per_rule[f.rule] = (max(worst, f.severity), n + 1)
    ranked = sorted(per_rule.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    chart = plots.findings_by_rule([(rule, sev.label, n) for rule, (sev, n) in ranked])
    summary = result.summary()
    return _render(
        "audit.html.j2",
        title=title or "hmacguard audit",
        summary=summary,
        counts=_counts(result.findings),
        files=files,
        chart=chart,
        diagnostics=[d.to_dict() for d in result.diagnostics],
        suppressed=len(result.suppressed),
    )


def _site_rows(report: LeakReport) -> list[Mapping[str, Any]]:
    return [
        {
            "where": s.where,
            "source": s.source,
            "how": s.how,
            "trend": s.trend,
            "per_request": format_bytes(s.bytes_per_request),
            "objects": f"{s.objects_per_request:.1f}",
            "retained": format_bytes(s.retained_bytes),
            "plateau_after": s.plateau_after,
        }
        for s in report.sites
    ]


def render_leaks_html(report: LeakReport, *, title: str | None = None) -> str:
    """The leak finder's result as one HTML page: the lines that keep memory and how it grew."""
    findings = list(report.findings)
    return _render(
        "leaks.html.j2",
        title=title or f"hmacguard leaks — {report.target}",
        report=report,
        per_request=format_bytes(report.bytes_per_request),
        body_size=None if report.body_size is None else format_bytes(report.body_size),
        counts=_counts(findings),
        findings=[_finding(f) for f in findings],
        sites=_site_rows(report),
        chart=plots.leak_series(report.sites, f"{report.unit}s served"),
        outside=[(f"{s.path}:{s.line}", format_bytes(b)) for s, b in report.outside_top],
        outside_per_request=format_bytes(report.outside_bytes_per_request),
        responses=", ".join(f"{n} × {status}" for status, n in report.workload.items()) or "none",
    )


_PAGES: Mapping[str, Callable[[Result], str]] = {
    "scan": lambda r: render_scan_html(cast(ScanReport, r)),
    "openapi-scan": lambda r: render_scan_html(cast(OpenApiScan, r)),
    "audit": lambda r: render_audit_html(cast(AuditResult, r)),
    "leaks": lambda r: render_leaks_html(cast(LeakReport, r)),
}


def render_html(result: Result) -> str:
    """``result`` as one self-contained HTML page."""
    page = _PAGES.get(result.kind)
    if page is None:
        raise ConfigurationError(f"no HTML page for a {result.kind} result")
    return page(result)
