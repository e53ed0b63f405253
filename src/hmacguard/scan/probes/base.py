"""The probe runner every probe family uses: builds signed or forged requests, keeps the budgets,
judges each exchange, records it, and notices when the target stops answering.

Judging an exchange (:meth:`Prober.judge`) is where timing and status meet:

- 413, or an error status the variant's small baseline request did not get: refused (by status);
- an answer that came before the whole body was written: refused (the server did not read it);
- reset or closed before the body was written, with no answer: refused (cut), unless the target then
  answers nothing at all: an error (it was dying, not refusing the size);
- 5xx, or a connection dropped after the whole body was written: error; 429: throttled;
- silence past the timeout: no answer; no TCP connection or no HTTP: unreachable;
- anything else, after the whole body was written: accepted.

A body that fits in the socket buffers (:attr:`Exchange.uncertainty`) is written whole before the
server reads a byte, so below that size only the status can tell a refusal; reports say so.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

from hmacguard.errors import HmacGuardError
from hmacguard.scan.bodies import BodySpec, shape_for
from hmacguard.scan.config import Budget, ScanTarget
from hmacguard.scan.model import (
    BurstResult,
    EnforcementResult,
    HeldResult,
    Measurement,
    Refusal,
    RetentionResult,
    ScanEvent,
    Untested,
    Variant,
    Verdict,
)
from hmacguard.scan.observe import MemoryObserver, MemoryWatch
from hmacguard.scan.wire import Endpoint, Exchange, Outcome, WireRequest, exchange
from hmacguard.schemes import StreamingSigner, forged_headers

__all__ = ["Prober", "ScanStopped", "size_text"]

#: Statuses that say "this request is unacceptable" (as opposed to "unauthenticated").
_REFUSAL_STATUSES = frozenset({400, 411, 413, 415, 422, 431})
#: Hangs of one content type after which its sizes at or below the hung ones are skipped.
_HANGS_BEFORE_SKIP = 2
_USER_AGENT = "hmacguard-scan"


class ScanStopped(Exception):
    """Ends the probing early: the target stopped answering, or the time budget is spent."""

    def __init__(self, reason: str, *, unavailable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable


def size_text(n: float) -> str:
    """Bytes in the unit that reads best (binary units, as the ladder is written)."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= factor:
            value = n / factor
            digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
            text = f"{value:.{digits}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{int(n)} B"


@dataclass
class Prober:
    target: ScanTarget
    budget: Budget
    endpoint: Endpoint
    path: str
    observer: MemoryObserver | None = None
    progress: Callable[[ScanEvent], None] | None = None
    started: float = field(default_factory=time.monotonic)
    measurements: list[Measurement] = field(default_factory=list)
    untested: list[Untested] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Exchanges outside the probes (liveness and fingerprint GETs), for the fingerprint.
    side_exchanges: list[Exchange] = field(default_factory=list)
    bytes_sent: int = 0
    requests: int = 0
    #: Bytes later phases have reserved; the current phase may not spend them.
    reserved: int = 0
    phase: str = "preflight"
    step: int = 0
    steps: int = 1
    unavailable_reason: str | None = None
    retention: RetentionResult | None = None
    enforcement: EnforcementResult | None = None
    burst: BurstResult | None = None
    held: HeldResult | None = None
    _baselines: dict[tuple[str, str], int] = field(default_factory=dict)
    _hangs: dict[str, list[int]] = field(default_factory=dict)
    _answered: Variant | None = None

    def __post_init__(self) -> None:
        self.scheme = self.target.signature_scheme()
        self.primary = Variant(content_type=self.target.effective_content_type)
        self.deadline = self.started + self.budget.seconds

    # -- budgets --------------------------------------------------------------------------------

    @property
    def remaining_bytes(self) -> int:
        return self.budget.bytes - self.bytes_sent

    @property
    def spendable_bytes(self) -> int:
        return self.remaining_bytes - self.reserved

    @property
    def remaining_seconds(self) -> float:
        return self.deadline - time.monotonic()

    def skip(self, what: str, reason: str) -> None:
        self.untested.append(Untested(what, reason))

    def check_time(self) -> None:
        if self.remaining_seconds <= 0:
            raise ScanStopped(f"the time budget ({self.budget.seconds:g}s) ran out")

    # -- building requests -----------------------------------------------------------------------

    def body(self, variant: Variant, size: int, *, tag: str = "") -> BodySpec:
        return BodySpec(shape_for(variant.content_type), size, gzip=variant.gzip, tag=tag)

    def request(self, variant: Variant, size: int) -> WireRequest:
        spec = self.body(variant, size, tag=secrets.token_hex(6))
        if self.target.secret is not None:
            # A Content-Length probe needs its signature before the body: hash a first pass over the
            # (deterministic) body, then send a second. Both passes stream.
            signer = StreamingSigner(self.scheme, self.target.secret)
            for chunk in spec.chunks():
                signer.update(bytes(chunk) if isinstance(chunk, memoryview) else chunk)
            provider = signer.headers()
        else:
            provider = forged_headers(self.scheme)
        return WireRequest(
            method=self.target.method,
            path=self.path,
            headers=self.headers(provider, variant.content_type, gzip=variant.gzip),
            body=spec.chunks,
            body_length=spec.wire_length,
            framing=variant.framing,
            expect_continue=variant.expect,
        )

    def headers(
        self, provider: dict[str, str], content_type: str, *, gzip: bool = False
    ) -> tuple[tuple[str, str], ...]:
        """A probe's headers: the provider's (signature included), the content type, and the user's
        ``--add-header`` values over them."""
        headers = {k: v for k, v in provider.items() if k.lower() != "content-type"}
        headers["Content-Type"] = content_type
        if gzip:
            headers["Content-Encoding"] = "gzip"
        if not any(k.lower() == "user-agent" for k in headers):
            headers["User-Agent"] = _USER_AGENT
        for name, value in self.target.headers.items():
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = value
        return tuple(headers.items())

    # -- sending ----------------------------------------------------------------------------------

    def send(
        self, variant: Variant, size: int, *, observe: bool = True, record: bool = True
    ) -> Measurement | None:
        """Probe ``variant`` at ``size``; None (and an untested entry) if the budget or a hang rule
        says not to. Raises ScanStopped when time is up or the target stopped answering."""
        self.check_time()
        what = f"{self.phase}: {variant.label} {size_text(size)}"
        hung = self._hangs.get(variant.content_type, [])
        if len(hung) >= _HANGS_BEFORE_SKIP and size <= max(hung):
            self.skip(what, f"{variant.content_type} bodies up to {size_text(max(hung))} got no answer")
            return None
        estimate = self.body(variant, size).wire_length  # (a gzip body's length varies with its tag)
        if estimate > self.spendable_bytes:
            left = size_text(max(0, self.spendable_bytes))
            self.skip(what, f"needs {size_text(estimate)} of budget, {left} left")
            return None
        try:
            request = self.request(variant, size)
        except HmacGuardError as exc:
            self.skip(what, f"cannot build the request: {exc}")
            return None
        wire = request.body_length
        watch_cm = self.observer.watch() if (observe and self.observer) else nullcontext(MemoryWatch())
        with watch_cm as watch:
            ex = self.transmit(request)
        verdict, refusal = self.judge(variant, ex)
        m = Measurement(self.phase, variant, size, wire, ex, verdict, refusal,
                        watch.baseline, watch.peak, watch.last)  # fmt: skip
        if record:
            self.measurements.append(m)
        self._learn(m)
        self.emit(f"{variant.label} {size_text(size)}: {self.describe(m)}", m)
        try:
            self.stop_if_gone(ex, what)
        except ScanStopped as stop:
            if stop.unavailable and m.verdict is Verdict.REFUSED:
                # Cut with no answer, and then nothing answers at all: the target was dying, not
                # refusing this size (judged a refusal, it would pass for a size limit).
                m = replace(m, verdict=Verdict.ERROR, refusal=None)
                if record:
                    self.measurements[-1] = m
            raise
        return m

    def transmit(self, request: WireRequest) -> Exchange:
        """Send ``request`` within the scan's deadline; count it and its body bytes."""
        ex = exchange(
            self.endpoint, request,
            timeout=self.budget.request_timeout, deadline=self.deadline,
            send_buffer=self.budget.send_buffer, expect_wait=self.budget.expect_wait,
        )  # fmt: skip
        self.requests += 1
        self.bytes_sent += ex.body_sent
        return ex

    def stop_if_gone(self, ex: Exchange, what: str) -> None:
        """Raise ScanStopped when ``ex`` was cut by the scan's deadline, or got no answer and the
        target then answers nothing at all (``unavailable``)."""
        if ex.error == "scan deadline":
            raise ScanStopped(f"the time budget ({self.budget.seconds:g}s) ran out")
        if ex.outcome is not Outcome.RESPONSE and not self.alive():
            self.unavailable_reason = (
                f"after {what} ({ex.outcome.value}{': ' + ex.error if ex.error else ''}) the target "
                "answered no request"
            )
            raise ScanStopped(self.unavailable_reason, unavailable=True)

    def judge(self, variant: Variant, ex: Exchange) -> tuple[Verdict, Refusal | None]:
        if ex.outcome in (Outcome.CONNECT_FAILED, Outcome.PROTOCOL_ERROR):
            return Verdict.UNREACHABLE, None
        if ex.outcome is Outcome.TIMEOUT:
            return Verdict.NO_ANSWER, None
        if ex.outcome in (Outcome.RESET, Outcome.CLOSED):
            return (Verdict.ERROR, None) if ex.body_complete else (Verdict.REFUSED, Refusal.CUT)
        status = ex.status or 0
        if status == 429:
            return Verdict.THROTTLED, None
        if status == 413:
            return Verdict.REFUSED, Refusal.STATUS
        if status >= 500:
            return Verdict.ERROR, None
        baseline = self._baseline(variant)
        differs = status in _REFUSAL_STATUSES and baseline is not None and status != baseline
        if differs:
            return Verdict.REFUSED, Refusal.STATUS
        if ex.early:
            return Verdict.REFUSED, Refusal.EARLY
        return Verdict.ACCEPTED, None

    def _baseline(self, variant: Variant) -> int | None:
        key = (variant.framing.value, variant.content_type)
        if key in self._baselines:
            return self._baselines[key]
        same_type = [s for (_, ct), s in self._baselines.items() if ct == variant.content_type]
        if same_type:
            return same_type[0]
        primary = (self.primary.framing.value, self.primary.content_type)
        return self._baselines.get(primary)

    def _learn(self, m: Measurement) -> None:
        ex = m.exchange
        if m.verdict is Verdict.ACCEPTED and ex.status is not None and not m.variant.gzip:
            self._baselines.setdefault((m.variant.framing.value, m.variant.content_type), ex.status)
        if ex.responded:
            self._answered = m.variant
        if m.verdict is Verdict.NO_ANSWER and ex.body_complete:
            self._hangs.setdefault(m.variant.content_type, []).append(m.size)

    # -- liveness ---------------------------------------------------------------------------------

    def get(self, path: str, timeout: float) -> Exchange:
        request = WireRequest("GET", path, (("User-Agent", _USER_AGENT), ("Accept", "*/*")))
        ex = exchange(self.endpoint, request, timeout=timeout, deadline=self.deadline + 5,
                      send_buffer=self.budget.send_buffer)  # fmt: skip
        self.requests += 1
        if ex.responded:
            self.side_exchanges.append(ex)
        return ex

    def alive(self) -> bool:
        """Whether the target still answers anything: a GET of a random path, then a tiny request
        of the last kind that got an answer; retried briefly (a server may be restarting a worker)."""
        timeout = min(self.budget.request_timeout, 2.0)
        for attempt in range(3):
            if self.get(f"/hmacguard-liveness-{secrets.token_hex(4)}", timeout).responded:
                return True
            if self._answered is not None:
                request = self.request(self._answered, 64)
                ex = exchange(self.endpoint, request, timeout=timeout, deadline=self.deadline + 5,
                              send_buffer=self.budget.send_buffer)  # fmt: skip
                self.requests += 1
                self.bytes_sent += ex.body_sent
                if ex.responded:
                    return True
            if attempt < 2:
                time.sleep(0.5)
        return False

    # -- progress ---------------------------------------------------------------------------------

    def describe(self, m: Measurement) -> str:
        ex = m.exchange
        status = f"{ex.status}" if ex.status is not None else ex.outcome.value
        return f"{m.verdict.value} ({status})"

    def emit(self, message: str, measurement: Measurement | None = None) -> None:
        if self.progress is None:
            return
        self.progress(
            ScanEvent(
                phase=self.phase, message=message, step=self.step, steps=self.steps,
                bytes_sent=self.bytes_sent, budget_bytes=self.budget.bytes,
                elapsed_s=time.monotonic() - self.started, budget_seconds=self.budget.seconds,
                measurement=measurement,
            )
        )  # fmt: skip
