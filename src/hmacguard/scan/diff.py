"""Comparing two scans: ``hmacguard diff A B``.

Findings are matched by :func:`hmacguard.findings.fingerprints`, the identity every report and
baseline shares: for an endpoint, its rule, the HTTP method and the URL's path and query, *not* the
scheme, host or port (the same endpoint scanned on a developer's port 5000 and in CI on a port the
launcher picked is the same endpoint).

The effective body limit of a framing (``content-length`` or ``chunked``) is the loosest one any
content type got: an attacker picks the weakest variant. A change counts when a framing becomes
bounded or unbounded, or when its smallest refused size moves by more than the bisection precision
of either scan (two scans of one server never bisect to the very same byte).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hmacguard.findings import Severity, fingerprints
from hmacguard.scan.probes.base import size_text

__all__ = ["EffectiveLimit", "LimitChange", "ScanDiff", "diff_scans", "effective_limits"]

_DEFAULT_PRECISION = 0.10


@dataclass(frozen=True)
class EffectiveLimit:
    """The loosest body limit seen for one framing, and the variant that showed it."""

    framing: str
    bounded: bool
    accepted: int | None
    refused: int | None
    variant: str

    def text(self) -> str:
        accepted = "nothing" if self.accepted is None else size_text(self.accepted)
        if self.bounded and self.refused is not None:
            return f"refused at {size_text(self.refused)} (accepted {accepted})"
        return f"no limit seen (accepted {accepted})"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def effective_limits(scan: Mapping[str, Any]) -> dict[str, EffectiveLimit]:
    """Per framing, from a scan report's ``limits`` (variant labels start with the framing)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for item in scan.get("limits") or []:
        label = str(item.get("variant", ""))
        groups.setdefault(label.split(" ", 1)[0], []).append(item)
    out: dict[str, EffectiveLimit] = {}
    for framing, items in groups.items():
        # A variant refused at every size is a type filter, not a size limit: it sets nothing.
        sized = [i for i in items if i.get("largest_accepted") is not None] or items
        unbounded = [i for i in sized if i.get("smallest_refused") is None]
        if unbounded:
            worst = max(unbounded, key=lambda i: i.get("largest_accepted") or 0)
            out[framing] = EffectiveLimit(
                framing, False, worst.get("largest_accepted"), None, worst["variant"]
            )
        else:
            worst = max(sized, key=lambda i: i["smallest_refused"])
            out[framing] = EffectiveLimit(
                framing, True, worst.get("largest_accepted"), worst["smallest_refused"], worst["variant"]
            )
    return out


@dataclass(frozen=True)
class LimitChange:
    framing: str
    before: EffectiveLimit | None
    after: EffectiveLimit | None

    def text(self) -> str:
        old = self.before.text() if self.before else "not probed"
        new = self.after.text() if self.after else "not probed"
        return f"{self.framing}: {old} -> {new}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "framing": self.framing,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None,
        }


def _precision(scan: Mapping[str, Any]) -> float:
    budget = scan.get("budget") or {}
    value = budget.get("bisect_precision") if isinstance(budget, Mapping) else None
    return float(value) if isinstance(value, (int, float)) else _DEFAULT_PRECISION


def _changed(a: EffectiveLimit | None, b: EffectiveLimit | None, precision: float) -> bool:
    if a is None or b is None:
        return a is not b
    if a.bounded != b.bounded:
        return True
    if not a.bounded or a.refused is None or b.refused is None:
        return False  # both unbounded: how much was accepted only says how large the scan went
    low, high = sorted((a.refused, b.refused))
    return high > low * (1 + precision)


@dataclass(frozen=True)
class ScanDiff:
    """What changed from scan ``before`` to scan ``after``."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]
    new: tuple[Mapping[str, Any], ...]
    fixed: tuple[Mapping[str, Any], ...]
    unchanged: tuple[Mapping[str, Any], ...]
    limit_changes: tuple[LimitChange, ...]
    limits_after: Mapping[str, EffectiveLimit]

    @property
    def score_change(self) -> int | None:
        a, b = self.before.get("score"), self.after.get("score")
        return b - a if isinstance(a, int) and isinstance(b, int) else None

    def new_at_or_above(self, threshold: Severity) -> list[Mapping[str, Any]]:
        return [f for f in self.new if Severity.parse(str(f.get("severity", "info"))) >= threshold]

    def to_dict(self) -> dict[str, Any]:
        def side(scan: Mapping[str, Any]) -> dict[str, Any]:
            target = scan.get("target") or {}
            return {
                "url": target.get("url"),
                "method": target.get("method"),
                "started_at": scan.get("started_at"),
                "score": scan.get("score"),
                "grade": scan.get("grade"),
                "findings": len(scan.get("findings") or []),
            }

        return {
            "before": side(self.before),
            "after": side(self.after),
            "score_change": self.score_change,
            "new": list(self.new),
            "fixed": list(self.fixed),
            "unchanged": list(self.unchanged),
            "limit_changes": [c.to_dict() for c in self.limit_changes],
            "limits_after": {k: v.to_dict() for k, v in self.limits_after.items()},
        }


def diff_scans(before: Mapping[str, Any], after: Mapping[str, Any]) -> ScanDiff:
    """New, fixed and unchanged findings, and the body-limit changes per framing."""
    old = list(before.get("findings") or [])
    new = list(after.get("findings") or [])
    old_ids = dict(zip(fingerprints(old), old, strict=True))
    new_ids = dict(zip(fingerprints(new), new, strict=True))
    limits_a, limits_b = effective_limits(before), effective_limits(after)
    precision = max(_precision(before), _precision(after))
    changes = tuple(
        LimitChange(framing, limits_a.get(framing), limits_b.get(framing))
        for framing in dict.fromkeys([*limits_a, *limits_b])
        if _changed(limits_a.get(framing), limits_b.get(framing), precision)
    )
    return ScanDiff(
        before=before,
        after=after,
        new=tuple(f for i, f in new_ids.items() if i not in old_ids),
        fixed=tuple(f for i, f in old_ids.items() if i not in new_ids),
        unchanged=tuple(f for i, f in new_ids.items() if i in old_ids),
        limit_changes=changes,
        limits_after=limits_b,
    )
