"""The enforcement phase: is the signature required at all, under every spelling of the path, and --
with the secret -- is a delivery refused when it is replayed or signed with a stale timestamp?

In this order, each request small (the probe event of :func:`hmacguard.scan.bodies.probe_event`, or
``--probe-body``), in the content type the baseline got an answer in:

1. **unsigned** at the scanned path: the provider's headers without any signature header;
2. **forged**: the same with a well-formed but wrong signature;
3. two random **sibling** paths, unsigned: what the server answers a path it has no route for (a
   catch-all route answers 2xx, and the spellings are judged against that; beside a path that let
   the unsigned request in, they show whether that path answers like any other);
4. each **spelling** of the path (:mod:`hmacguard.scan.spellings`), unsigned; not sent when the scanned
   path itself let an unsigned request in (the bypass is moot then);
5. with the secret: a correctly **signed** fresh delivery, then the very same request again
   (**replay**: same body, id, timestamp and signature); when that is refused and the scheme's
   signature header can be spelled another way (Stripe, Standard Webhooks: an entry of another
   version, which verifiers skip), the same delivery once more so spelled (**replay-respelled**):
   a receiver that remembers the header's text takes it for a new delivery;
6. with the secret, for a scheme that signs a timestamp: one delivery signed an hour in the past and
   one an hour ahead (**stale**), each with its own body and id, so that only their age can refuse them.

Whatever could not be tried, or got an answer that cannot decide, is listed as untested under the id
of the rule it leaves open (no secret, a scheme without timestamps, a signed delivery the endpoint
refused, a time or byte budget spent, two probes without an answer).
"""

from __future__ import annotations

import secrets
import time

from hmacguard.scan.bodies import probe_event
from hmacguard.scan.model import EnforcementProbe, EnforcementResult, ProbeKind
from hmacguard.scan.probes.base import Prober, ScanStopped
from hmacguard.scan.probes.retention import answering_variant
from hmacguard.scan.spellings import path_spellings, sibling_target
from hmacguard.scan.wire import WireRequest
from hmacguard.schemes import StreamingSigner, forged_headers

__all__ = ["RULE_OF", "STALE_SECONDS", "run_enforcement"]

#: How far from now the stale probes' timestamps are: well past every provider's tolerance (Stripe
#: and Slack allow 5 minutes, Standard Webhooks 5 minutes too).
STALE_SECONDS = 3600
#: Probes without an answer after which the rest of the phase is not sent.
_MAX_SILENT = 2
_SIBLINGS = 2
# Rule ids, for the untested entries (the rules themselves live in hmacguard.scan.rules).
_NOT_ENFORCED, _BYPASS = "signature-not-enforced", "signature-bypass-path"
_REPLAY, _STALE = "replay-accepted", "stale-timestamp-accepted"
#: The rule each kind of probe informs (a probe not sent leaves it untested).
RULE_OF = {
    ProbeKind.UNSIGNED: _NOT_ENFORCED, ProbeKind.FORGED: _NOT_ENFORCED,
    ProbeKind.SIBLING: _BYPASS, ProbeKind.SPELLING: _BYPASS,
    ProbeKind.SIGNED: _REPLAY, ProbeKind.REPLAY: _REPLAY, ProbeKind.REPLAY_RESPELLED: _REPLAY,
    ProbeKind.STALE_PAST: _STALE, ProbeKind.STALE_FUTURE: _STALE,
}  # fmt: skip


class _Phase:
    """One run of the phase: sends, records, and notes what it leaves untested."""

    def __init__(self, prober: Prober) -> None:
        self.prober = prober
        answering = answering_variant(prober)
        self.content_type = answering[0].content_type if answering else prober.primary.content_type
        self.probes: list[EnforcementProbe] = []
        self.silent = 0

    def body(self) -> bytes:
        """The probe body: ``--probe-body``, or the test event with an id of its own."""
        fixed = self.prober.target.probe_body
        return fixed if fixed is not None else probe_event(self.content_type, secrets.token_hex(6))

    def send(
        self, kind: ProbeKind, target: str, headers: dict[str, str], body: bytes, *, spelling: str = "",
        timestamp: int | None = None,
    ) -> EnforcementProbe | None:  # fmt: skip
        prober = self.prober
        what = f"enforcement: {kind.value} {target}"
        prober.check_time()
        why = None
        if self.silent >= _MAX_SILENT:
            why = f"{self.silent} enforcement probes got no answer"
        elif len(body) > prober.spendable_bytes:
            why = "would not fit the byte budget"
        if why is not None:
            prober.skip(what, why)
            self.untested(RULE_OF[kind], f"not every probe was sent: {why}")
            return None
        request = WireRequest(
            prober.target.method, target, prober.headers(headers, self.content_type),
            body=lambda: [body], body_length=len(body),
        )  # fmt: skip
        ex = prober.transmit(request)
        probe = EnforcementProbe(kind, target, ex, spelling, timestamp)
        self.probes.append(probe)
        prober.emit(f"{kind.value} {target}: {ex.status if ex.responded else ex.outcome.value}")
        if not ex.responded:
            self.silent += 1
        prober.stop_if_gone(ex, what)
        return probe

    def first(self, kind: ProbeKind) -> EnforcementProbe | None:
        return next((p for p in self.probes if p.kind is kind), None)

    def untested(self, rule: str, reason: str) -> None:
        self.prober.skip(rule, reason)

    def result(self) -> EnforcementResult:
        target = self.prober.target
        fixed = target.probe_body
        size = len(fixed) if fixed is not None else len(probe_event(self.content_type, "0" * 12))
        return EnforcementResult(
            tuple(self.probes), self.content_type, "test-event" if fixed is None else "file", size,
            target.signed, self.prober.scheme.timestamped,
        )  # fmt: skip


def run_enforcement(prober: Prober) -> EnforcementResult:
    """Send the phase's probes; the result is kept on ``prober.enforcement`` even when the scan stops
    midway (what was sent is judged, what was not is listed as untested)."""
    phase = _Phase(prober)
    try:
        _unsigned_and_forged(phase)
        _paths(phase)
        secret = prober.target.secret
        if secret is None:
            phase.untested(_REPLAY, "needs --secret: only a correctly signed delivery can be replayed")
            phase.untested(_STALE, "needs --secret: only a correctly signed delivery shows whether its "
                           "age is checked")  # fmt: skip
        else:
            _replay(phase, secret)
            _stale(phase, secret)
    except ScanStopped as stop:
        for rule in (_NOT_ENFORCED, _BYPASS, _REPLAY, _STALE):
            if not any(u.what == rule for u in prober.untested):
                phase.untested(rule, f"the scan stopped during the enforcement phase: {stop.reason}")
        raise
    finally:
        prober.enforcement = phase.result()
    return prober.enforcement


def _unsigned_and_forged(phase: _Phase) -> None:
    scheme, path = phase.prober.scheme, phase.prober.path
    unsigned = phase.send(ProbeKind.UNSIGNED, path, scheme.provider_headers(message_id=None), phase.body())
    forged = phase.send(ProbeKind.FORGED, path, forged_headers(scheme), phase.body())
    for kind, probe in (("unsigned", unsigned), ("forged", forged)):
        if probe is None or not probe.exchange.responded:
            phase.untested(_NOT_ENFORCED, f"the {kind} request to the scanned path got no answer")


def _paths(phase: _Phase) -> None:
    prober = phase.prober
    unsigned = phase.first(ProbeKind.UNSIGNED)
    if unsigned is None or not unsigned.exchange.responded:
        phase.untested(_BYPASS, "the unsigned request to the scanned path got no answer: no refusal "
                       "to compare other spellings with")  # fmt: skip
        return
    # The siblings go out either way: beside an accepting path they show whether it is the receiver
    # at all (it answers like any path), beside a refusing one what a catch-all route answers.
    headers = prober.scheme.provider_headers(message_id=None)
    targets = [sibling_target(prober.path, secrets.token_hex(6)) for _ in range(_SIBLINGS)]
    siblings = [phase.send(ProbeKind.SIBLING, target, headers, phase.body()) for target in targets]
    if unsigned.accepted:
        phase.untested(_BYPASS, "moot: the scanned path itself accepts unsigned requests "
                       "(signature-not-enforced)")  # fmt: skip
        return
    sent = [p for p in siblings if p is not None]
    accepted = [p for p in sent if p.accepted]
    # A catch-all that answers every path alike can be told apart from the handler; one whose answers
    # vary (a path echoed, a request id) cannot.
    if accepted and (len(accepted) < len(sent) or len({p.answer for p in accepted}) > 1):
        phase.untested(_BYPASS, "random sibling paths are answered 2xx too (a catch-all route), with "
                       "answers that differ from one another, so a spelling's 2xx cannot be told from "
                       "the catch-all's")  # fmt: skip
        return
    for spelling in path_spellings(prober.path):
        phase.send(ProbeKind.SPELLING, spelling.target, headers, phase.body(), spelling=spelling.name)


def _signed(phase: _Phase, secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    signer = StreamingSigner(phase.prober.scheme, secret, timestamp=timestamp)
    signer.update(body)
    return signer.headers()


def _replay(phase: _Phase, secret: str) -> None:
    body, path = phase.body(), phase.prober.path
    headers = _signed(phase, secret, body, int(time.time()))
    first = phase.send(ProbeKind.SIGNED, path, headers, body)
    if first is None or not first.accepted:
        answer = "no answer" if first is None or not first.exchange.responded else str(first.exchange.status)
        phase.untested(_REPLAY, f"the correctly signed delivery was not accepted ({answer}): check "
                       "--secret, or give --probe-body an event the endpoint accepts")  # fmt: skip
        return
    again = phase.send(ProbeKind.REPLAY, path, headers, body)
    respelled = phase.prober.scheme.respelled(headers)
    if again is not None and again.exchange.responded and not again.accepted and respelled is not None:
        phase.send(ProbeKind.REPLAY_RESPELLED, path, respelled, body)


def _stale(phase: _Phase, secret: str) -> None:
    prober = phase.prober
    if not prober.scheme.timestamped:
        phase.untested(_STALE, f"the {prober.scheme.name} scheme signs no timestamp")
        return
    now = int(time.time())
    sent = []
    for kind, timestamp in ((ProbeKind.STALE_PAST, now - STALE_SECONDS),
                            (ProbeKind.STALE_FUTURE, now + STALE_SECONDS)):  # fmt: skip
        body = phase.body()
        headers = _signed(phase, secret, body, timestamp)
        sent.append(phase.send(kind, prober.path, headers, body, timestamp=timestamp))
    if any(p is not None and p.accepted for p in sent):
        return
    fresh = phase.first(ProbeKind.SIGNED)
    if fresh is None or not fresh.accepted:
        phase.untested(_STALE, "the stale deliveries were refused, but so was a fresh one: their "
                       "refusal does not show that the age is checked")  # fmt: skip
    elif any(p is None or not p.exchange.responded or p.exchange.status == 409 for p in sent):
        phase.untested(_STALE, "a stale delivery got no answer, or 409 (refused as a replay, as when "
                       "--probe-body sends the same body twice), which says nothing of its age")  # fmt: skip
