"""The scan plan: which probe families run, in which order, and what each may spend.

The phases run in a fixed order, most telling first, so that a small budget still answers the main
question. Enforcement runs right after the baseline (so that it speaks a content type the server
answers), its requests tiny; retention runs next, before any large body has raised the server's
allocator high-water mark (see probes/retention.py). Later phases *reserve* bytes: while the ladders
run they may not spend what expect, gzip, bisection and the burst will need, so a 100 MiB rung is
skipped (and listed as untested) rather than starving the burst. Within that frame the plan adapts as
it goes: ladders stop climbing past a refusal, content types start at the primary's refusal size,
bisection works between the sizes the ladders found, the burst and retention use a size (and a
content type) the server accepted.

:func:`plan_scan` computes the plan without sending anything: what ``--dry-run`` prints, including
what the budget would leave untested in the worst case (when nothing is refused).

:class:`PhaseSelection` is ``--phase`` / ``--skip-phase``: a phase left out is listed as untested,
with the option that left it out, and so are the rules that judge it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from hmacguard.errors import ConfigurationError
from hmacguard.scan.bodies import BodySpec, probe_event, shape_for
from hmacguard.scan.config import Budget, MiB, ScanTarget
from hmacguard.scan.model import Untested
from hmacguard.scan.spellings import path_spellings

__all__ = ["PHASES", "PhaseSelection", "PlannedPhase", "ScanPlan", "enforcement_requests", "plan_scan"]

#: Phase names, in the order they run.
PHASES: tuple[str, ...] = (
    "baseline", "enforcement", "held-uploads", "retention", "ladder", "chunked", "content-type",
    "expect", "gzip", "bisect", "burst",
)  # fmt: skip
_QUIET_REQUESTS = 3
#: Phases that need none of the baseline's answers.
_STANDALONE = frozenset({"enforcement"})


@dataclass(frozen=True)
class PhaseSelection:
    """Which phases run: only those named (``--phase``, repeatable), less those skipped
    (``--skip-phase``). The baseline runs whenever a phase that needs it does: the status a small body
    gets is what every refusal is judged against. Validated when built (unknown names, nothing left)."""

    only: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()

    @classmethod
    def of(cls, only: Iterable[str] = (), skip: Iterable[str] = ()) -> PhaseSelection:
        return cls(frozenset(only), frozenset(skip))

    def __post_init__(self) -> None:
        for option, names in (("--phase", self.only), ("--skip-phase", self.skip)):
            unknown = sorted(names - set(PHASES))
            if unknown:
                raise ConfigurationError(
                    f"{option}: unknown phase {unknown[0]!r} (phases: {', '.join(PHASES)})"
                )
        if not [p for p in PHASES if self.reason(p) is None]:
            raise ConfigurationError("--phase and --skip-phase leave no phase to run")

    def reason(self, phase: str) -> str | None:
        """Why ``phase`` does not run (None: it runs)."""
        if phase in self.skip:
            return "skipped with --skip-phase"
        if not self.only or phase in self.only:
            return None
        needs_baseline = any(p not in _STANDALONE and p not in self.skip for p in self.only)
        if phase == "baseline" and needs_baseline:
            return None
        return "not selected (--phase " + " --phase ".join(p for p in PHASES if p in self.only) + ")"


def enforcement_requests(target: ScanTarget) -> int:
    """How many requests the enforcement phase sends at most."""
    base = 2 + 2 + len(path_spellings(target.parsed().path))  # unsigned, forged, 2 siblings, spellings
    if target.secret is None:
        return base
    respelled = 1 if _respellable(target) else 0
    # signed + replay (+ the replay respelled, when refused), stale x2
    return base + 2 + respelled + (2 if target.signature_scheme().timestamped else 0)


def _respellable(target: ScanTarget) -> bool:
    return target.signature_scheme().respellable


@dataclass(frozen=True)
class PlannedPhase:
    name: str
    title: str
    #: Body sizes the phase sends at most (before adaptation), one entry per request kind.
    sizes: tuple[int, ...]
    #: Wire bytes the phase may spend at most.
    worst_bytes: int
    #: Bytes held back for this phase while earlier phases run.
    reserve: int
    adapts: str
    enabled: bool = True
    disabled_reason: str = ""


@dataclass(frozen=True)
class ScanPlan:
    url: str
    budget: Budget
    memory: bool
    phases: tuple[PlannedPhase, ...]
    untested_worst_case: tuple[Untested, ...]

    @property
    def worst_bytes(self) -> int:
        return sum(p.worst_bytes for p in self.phases if p.enabled)

    def reserve_after(self, name: str) -> int:
        """Bytes reserved by the phases that run after ``name``."""
        names = [p.name for p in self.phases]
        later = self.phases[names.index(name) + 1 :]
        return sum(p.reserve for p in later if p.enabled)


def _rung_at_least(budget: Budget, size: int) -> int:
    return next((s for s in budget.ladder if s >= size), budget.top)


def plan_scan(
    target: ScanTarget,
    budget: Budget,
    *,
    memory: bool,
    large_body: int = 10 * MiB,
    selection: PhaseSelection | None = None,
) -> ScanPlan:
    """The plan for ``target`` under ``budget`` (``memory``: whether server memory is observed;
    ``selection``: ``--phase`` / ``--skip-phase``)."""
    ladder = budget.ladder
    shape = shape_for(target.effective_content_type)
    other_types = [
        ct for ct in budget.content_types
        if ct.split(";")[0].strip().lower() != target.effective_content_type.split(";")[0].strip().lower()
    ]  # fmt: skip
    large = _rung_at_least(budget, large_body)
    ct_sizes = tuple(sorted({ladder[0], large}))
    gzip_wire = BodySpec(shape, budget.top, gzip=True).wire_length
    retention_count = budget.retention_warmup + budget.retention_rounds * budget.retention_per_round
    burst_count = budget.burst_requests + _QUIET_REQUESTS
    held_size = min(budget.held_size, budget.max_size)
    held_bytes = budget.held_uploads * held_size
    held_from = budget.held_addresses
    held_spread = f", from {held_from} loopback addresses" if held_from > 1 else ""
    bisect_reserve = min(budget.bytes // 8, 64 * MiB)
    event = len(target.probe_body or probe_event(target.effective_content_type, "0" * 12))
    enforcing = enforcement_requests(target)
    signed_part = (
        "; signed: a replay"
        + (" (and respelled)" if _respellable(target) else "")
        + (" and stale timestamps" if target.signature_scheme().timestamped else "")
        if target.signed
        else ""
    )
    phases: tuple[PlannedPhase, ...] = (
        PlannedPhase("baseline", f"{ladder[0]:,}-byte request (other content types until one is "
                     "accepted)", (ladder[0],), ladder[0] * (1 + len(other_types)), 0,
                     "tries other content types only when the primary gets no usable answer"),
        PlannedPhase("enforcement", f"{enforcing} tiny requests: unsigned, forged, other spellings of "
                     f"the path{signed_part}", (event,), enforcing * event, 0,
                     "in a content type the baseline got an answer in; spellings are judged against a "
                     "random sibling path"),
        PlannedPhase("held-uploads", f"{budget.held_uploads} uploads of {held_size:,} bytes held open "
                     f"at once, all but their last bytes sent slowly{held_spread}", (held_size,),
                     held_bytes + 2 * held_size, 0,
                     "at most the largest accepted size (one request tries it first when none was)",
                     enabled=memory, disabled_reason="needs --pid, --metrics or --launch"),
        PlannedPhase("retention", f"{budget.retention_warmup} warm-up + {budget.retention_rounds} "
                     f"rounds x {budget.retention_per_round} identical requests, before any large "
                     "probe", (budget.retention_size,), (retention_count + 1) * budget.retention_size, 0,
                     "in a content type the server answered; a quarter of the size if refused",
                     enabled=memory, disabled_reason="needs --pid, --metrics or --launch"),
        PlannedPhase("ladder", f"size ladder, Content-Length, {target.effective_content_type}",
                     ladder, sum(ladder[1:]), 0, "stops climbing at the first refusal"),
        PlannedPhase("chunked", "the same sizes with Transfer-Encoding: chunked", ladder,
                     sum(ladder), 0, "stops climbing at the first refusal"),
        PlannedPhase("content-type", f"other content types: {', '.join(other_types) or 'none'}",
                     ct_sizes, len(other_types) * sum(ladder), 0,
                     "starts at the primary's largest accepted and smallest refused rung and climbs "
                     "from there; when the primary refused nothing, goes up to the large-body threshold"),
        PlannedPhase("expect", "Expect: 100-continue: refused before the body is sent?", (large,),
                     large, min(large, budget.bytes // 16), "at the primary's smallest refused size"),
        PlannedPhase("gzip", "gzip body, large once inflated", (budget.top,), gzip_wire, gzip_wire,
                     "one probe; memory shows whether the server inflates it"),
        PlannedPhase("bisect", f"limit bisection to {budget.bisect_precision:.0%}", (),
                     bisect_reserve, bisect_reserve,
                     "between the largest accepted and smallest refused size of each variant"),
        PlannedPhase("burst", f"{budget.burst_requests} requests, {budget.burst_concurrency} at a "
                     f"time (after {_QUIET_REQUESTS} quiet ones)", (budget.burst_size,),
                     burst_count * budget.burst_size, burst_count * budget.burst_size,
                     "at most the largest accepted size, in a content type the server answers"),
    )  # fmt: skip
    if selection is not None:
        phases = tuple(_select(p, selection) for p in phases)
    plan = ScanPlan(target.url, budget, memory, phases, ())
    return ScanPlan(target.url, budget, memory, phases, tuple(_worst_case_untested(plan)))


def _select(phase: PlannedPhase, selection: PhaseSelection) -> PlannedPhase:
    reason = selection.reason(phase.name)
    if reason is None or not phase.enabled:
        return phase
    return replace(phase, enabled=False, disabled_reason=reason)


def _worst_case_untested(plan: ScanPlan) -> list[Untested]:
    """Walk the plan as if every probe were accepted (the most expensive case)."""
    out: list[Untested] = []
    remaining = plan.budget.bytes
    for phase in plan.phases:
        if not phase.enabled:
            out.append(Untested(phase.name, phase.disabled_reason))
            continue
        spendable = remaining - plan.reserve_after(phase.name)
        if phase.name in ("ladder", "chunked"):
            for size in phase.sizes[1:] if phase.name == "ladder" else phase.sizes:
                if size <= spendable:
                    spendable -= size
                    remaining -= size
                else:
                    out.append(Untested(f"{phase.name} {size:,} bytes", "would not fit the byte budget"))
        elif phase.worst_bytes <= spendable:
            remaining -= phase.worst_bytes
        elif phase.name == "content-type":
            spent = min(phase.worst_bytes, max(0, spendable))
            remaining -= spent
            out.append(Untested(phase.name, "larger content-type probes would not fit the byte budget"))
        else:
            out.append(Untested(phase.name, "would not fit the byte budget"))
    return out
