"""The enforcement phase and its four rules: path spellings, the probe event, phase selection, the rules
on constructed probes, and real servers -- the guard as it was before it decided protection on the
routed path (a string match on PATH_INFO), catch-all routes, receivers that verify only a header that
is present, and what is left untested (no secret, a budget, a signed delivery the endpoint refused)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import pytest

from hmacguard.errors import ConfigurationError
from hmacguard.scan import (
    Budget,
    EnforcementProbe,
    EnforcementResult,
    PhaseSelection,
    ProbeKind,
    ScanReport,
    ScanTarget,
    plan_scan,
    run_scan,
)
from hmacguard.scan.analysis import ScanFacts, analyse
from hmacguard.scan.bodies import PROBE_EVENT_TYPE, probe_event
from hmacguard.scan.model import Stack, Variant
from hmacguard.scan.probes.enforcement import RULE_OF
from hmacguard.scan.rules import SCAN_RULES
from hmacguard.scan.spellings import path_spellings, sibling_target
from hmacguard.scan.wire import Exchange, Outcome
from tests.scan import _wsgi

ENFORCEMENT_RULES = {
    "signature-not-enforced", "signature-bypass-path", "replay-accepted", "stale-timestamp-accepted",
}  # fmt: skip
ONLY = PhaseSelection.of(["enforcement"])
QUICK = Budget(seconds=30, request_timeout=2.0)


# -- spellings and the probe event -------------------------------------------------------------------


def test_the_phase_names_the_rules_it_leaves_untested_by_their_ids() -> None:
    # The probes cannot import the rules (a cycle): their ids are spelled twice, and must agree.
    assert set(RULE_OF.values()) == ENFORCEMENT_RULES
    assert set(SCAN_RULES) >= ENFORCEMENT_RULES
    assert all(SCAN_RULES[r].phases == ("enforcement",) for r in ENFORCEMENT_RULES)


def test_spellings_of_a_path_keep_its_query_and_differ_from_it() -> None:
    spelled = {s.name: s.target for s in path_spellings("/hooks/github?v=1")}
    assert spelled["double-slash"] == "//hooks/github?v=1"
    assert spelled["inner-double-slash"] == "/hooks//github?v=1"
    assert spelled["trailing-slash"] == "/hooks/github/?v=1"
    assert spelled["encoded-slash"] == "/hooks/%2Fgithub?v=1"
    assert spelled["encoded-letter"] == "/hooks/%67ithub?v=1"
    assert spelled["dot-dot-segment"] == "/hooks/hmacguard/../github?v=1"
    assert spelled["semicolon-parameter"] == "/hooks/github;hmacguard=1?v=1"
    assert spelled["upper-case"] == "/HOOKS/GITHUB?v=1"
    assert "/hooks/github?v=1" not in spelled.values()
    assert len(set(spelled.values())) == len(spelled)
    assert sibling_target("/hooks/github?v=1", "ab12") == "/hooks/hmacguard-ab12?v=1"


def test_spellings_of_odd_paths_are_request_targets() -> None:
    # A trailing slash stays on the spellings that change the front; the root has no last segment.
    trailing = {s.name: s.target for s in path_spellings("/hooks/")}
    assert trailing["trailing-slash"] == "/hooks" and trailing["double-slash"] == "//hooks/"
    for path in ("/", "/hooks/", "/%7Bid%7D", "/a/b/c"):
        for spelling in path_spellings(path):
            assert spelling.target.startswith("/") and spelling.target != path, spelling
    assert "encoded-letter" not in {s.name for s in path_spellings("/%7Bid%7D")}


def test_probe_event_is_a_marked_test_event_unique_per_probe() -> None:
    first = json.loads(probe_event("application/json", "aa11"))
    second = json.loads(probe_event("application/json", "bb22"))
    assert first["hmacguard_probe"] is True and first["type"] == PROBE_EVENT_TYPE
    assert "test event" in first["note"] and first["id"] != second["id"]
    form = parse_qs(probe_event("application/x-www-form-urlencoded", "aa11").decode())
    assert form["type"] == [PROBE_EVENT_TYPE] and form["id"] == ["aa11"]
    assert len(probe_event("text/plain", "aa11")) < 300


# -- phase selection -----------------------------------------------------------------------------------


def test_phase_selection_is_validated_and_listed() -> None:
    with pytest.raises(ConfigurationError, match="unknown phase 'warp'"):
        PhaseSelection.of(["warp"])
    with pytest.raises(ConfigurationError, match="--skip-phase: unknown phase"):
        PhaseSelection.of(skip=["nope"])
    with pytest.raises(ConfigurationError, match="leave no phase"):
        PhaseSelection.of(["enforcement"], ["enforcement"])
    target = ScanTarget("http://127.0.0.1:1/webhook")
    only = {p.name: p for p in plan_scan(target, Budget(), memory=True, selection=ONLY).phases}
    assert [n for n, p in only.items() if p.enabled] == ["enforcement"]
    assert "--phase enforcement" in only["ladder"].disabled_reason
    # A size phase needs the baseline's answers, so the baseline comes along.
    ladder = plan_scan(target, Budget(), memory=True, selection=PhaseSelection.of(["ladder"])).phases
    assert [p.name for p in ladder if p.enabled] == ["baseline", "ladder"]
    skipped = plan_scan(target, Budget(), memory=True, selection=PhaseSelection.of(skip=["enforcement"]))
    assert [u.what for u in skipped.untested_worst_case] == ["enforcement"]


def test_enforcement_plan_counts_its_requests() -> None:
    forged = plan_scan(ScanTarget("http://127.0.0.1:1/webhook"), Budget(), memory=False)
    phase = next(p for p in forged.phases if p.name == "enforcement")
    assert phase.title.startswith("15 tiny requests")  # unsigned, forged, 2 siblings, 11 spellings
    signed = ScanTarget("http://127.0.0.1:1/webhook", scheme="stripe", secret="s")
    phase = next(p for p in plan_scan(signed, Budget(), memory=False).phases if p.name == "enforcement")
    # + signed, replay, the replay respelled (Stripe's header has another spelling), stale x2
    assert phase.title.startswith("20 tiny requests") and "stale timestamps" in phase.title
    assert "a replay (and respelled)" in phase.title
    github = ScanTarget("http://127.0.0.1:1/webhook", scheme="github", secret="s")
    phase = next(p for p in plan_scan(github, Budget(), memory=False).phases if p.name == "enforcement")
    assert phase.title.startswith("17 tiny requests") and "respelled" not in phase.title


# -- the rules, on constructed probes ------------------------------------------------------------------


def _probe(
    kind: ProbeKind, status: int | None, target: str = "/webhook", body: bytes = b""
) -> EnforcementProbe:
    answered = status is not None
    ex = Exchange(Outcome.RESPONSE if answered else Outcome.TIMEOUT, 200, body_sent=200, status=status,
                  body_head=body, total_s=0.01)  # fmt: skip
    return EnforcementProbe(kind, target, ex)


def _found(*probes: EnforcementProbe) -> set[str]:
    result = EnforcementResult(tuple(probes), "application/json", "test-event", 215, True, True)
    facts = ScanFacts("http://127.0.0.1:1/webhook", "POST", Variant(), (), (), None, None, None, Stack(),
                      enforcement=result)  # fmt: skip
    findings, diagnostics = analyse(facts)
    assert not diagnostics
    return {f.rule for f in findings}


U, F, S, P = ProbeKind.UNSIGNED, ProbeKind.FORGED, ProbeKind.SIBLING, ProbeKind.SPELLING


def test_unsigned_or_forged_2xx_is_signature_not_enforced() -> None:
    assert _found(_probe(U, 400), _probe(F, 401)) == set()
    assert _found(_probe(U, 200), _probe(F, 401)) == {"signature-not-enforced"}
    assert _found(_probe(U, 400), _probe(F, 202)) == {"signature-not-enforced"}
    # A redirect, a throttle or no answer is not an acceptance.
    assert _found(_probe(U, 308), _probe(F, 429), _probe(ProbeKind.SIGNED, None)) == set()


def test_a_spelling_bypass_is_judged_against_the_siblings() -> None:
    refused = [_probe(U, 400), _probe(F, 401)]
    plain = [_probe(S, 404, "/hmacguard-a"), _probe(S, 404, "/hmacguard-b")]
    assert _found(*refused, *plain, _probe(P, 200, "//webhook")) == {"signature-bypass-path"}
    assert _found(*refused, *plain, _probe(P, 404, "//webhook")) == set()
    # A catch-all answering every path alike: a spelling answered the same is the catch-all's answer;
    # one answered differently reached something else.
    caught = [_probe(S, 200, "/hmacguard-a", b"caught"), _probe(S, 200, "/hmacguard-b", b"caught")]
    assert _found(*refused, *caught, _probe(P, 200, "/WEBHOOK", b"caught")) == set()
    assert _found(*refused, *caught, _probe(P, 200, "//webhook", b'{"ok":1}')) == {"signature-bypass-path"}
    # A catch-all whose answers vary cannot be told from the handler: no finding (listed untested).
    varying = [_probe(S, 200, "/hmacguard-a", b"caught a"), _probe(S, 200, "/hmacguard-b", b"caught b")]
    assert _found(*refused, *varying, _probe(P, 200, "//webhook", b'{"ok":1}')) == set()
    # When the scanned path itself takes unsigned requests, that is the finding, not a bypass.
    accepted = [_probe(U, 200), _probe(F, 401), *plain, _probe(P, 200, "//webhook")]
    assert _found(*accepted) == {"signature-not-enforced"}


def test_replay_and_stale_timestamps() -> None:
    signed, replay = _probe(ProbeKind.SIGNED, 200), _probe(ProbeKind.REPLAY, 200)
    assert _found(signed, replay) == {"replay-accepted"}
    assert _found(signed, _probe(ProbeKind.REPLAY, 409)) == set()
    # The identical replay refused, the same delivery respelled accepted: the header's text is kept.
    respelled_ok, respelled_no = (
        _probe(ProbeKind.REPLAY_RESPELLED, 200),
        _probe(ProbeKind.REPLAY_RESPELLED, 409),
    )
    assert _found(signed, _probe(ProbeKind.REPLAY, 409), respelled_ok) == {"replay-accepted"}
    assert _found(signed, _probe(ProbeKind.REPLAY, 409), respelled_no) == set()
    assert _found(_probe(ProbeKind.SIGNED, 401), _probe(ProbeKind.REPLAY, 409), respelled_ok) == set()
    assert _found(_probe(ProbeKind.SIGNED, 401), _probe(ProbeKind.REPLAY, 200)) == set()
    past, ahead = _probe(ProbeKind.STALE_PAST, 200), _probe(ProbeKind.STALE_FUTURE, 400)
    assert _found(past, ahead) == {"stale-timestamp-accepted"}
    assert _found(_probe(ProbeKind.STALE_PAST, 400), _probe(ProbeKind.STALE_FUTURE, 202)) == {
        "stale-timestamp-accepted"
    }
    assert _found(_probe(ProbeKind.STALE_PAST, 400), ahead) == set()


# -- real servers --------------------------------------------------------------------------------------


def _enforcement_scan(app: Any, *, secret: str | None = None, budget: Budget = QUICK) -> ScanReport:
    with _wsgi.serve(app) as url:
        return run_scan(ScanTarget(url, secret=secret), budget, selection=ONLY)


def _rules(report: ScanReport) -> set[str]:
    return {f.rule for f in report.findings}


def _untested(report: ScanReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for u in report.untested:
        out.setdefault(u.what, []).append(u.reason)
    return out


def test_the_pre_fix_string_matching_guard_is_caught_by_signature_bypass_path() -> None:
    # The guard as it was before issue 10: protection decided by comparing PATH_INFO with the
    # protected path, in front of a Flask app. The server decodes %2F into PATH_INFO; Werkzeug merges
    # the resulting double slash and routes the request to the protected view, unverified.
    report = _enforcement_scan(_wsgi.string_match_guard(_wsgi.flask_app()))
    assert _rules(report) == {"signature-bypass-path"}, report.findings
    finding = report.findings[0]
    bypassed = {b["target"] for b in finding.evidence.values["bypasses"]}  # type: ignore[union-attr]
    assert "/%2Fwebhook" in bypassed and finding.severity.label == "critical"
    assert finding.stack is not None and finding.stack.startswith("Flask")
    # Without the secret, what needs it is untested, never passed.
    assert {"replay-accepted", "stale-timestamp-accepted"} <= set(_untested(report))


def test_the_same_guard_deciding_on_the_routed_endpoint_is_not() -> None:
    assert _rules(_enforcement_scan(_wsgi.routed_guard(_wsgi.flask_app()))) == set()


def test_a_catch_all_route_is_no_bypass_unless_the_path_itself_takes_unsigned_requests() -> None:
    # Every other path answers 200: the spellings get the catch-all's answer, not the handler's.
    clean = _enforcement_scan(_wsgi.catch_all_receiver())
    assert _rules(clean) == set(), clean.findings
    assert clean.enforcement is not None and any(p.accepted for p in clean.enforcement.of(P))
    # The protected path takes unsigned requests: that is signature-not-enforced, and the bypass moot.
    open_ = _enforcement_scan(_wsgi.catch_all_receiver(enforces=False))
    assert _rules(open_) == {"signature-not-enforced"}
    assert any("moot" in r for r in _untested(open_)["signature-bypass-path"])
    # A catch-all in front of which a string-matching guard sits still shows the bypass: the handler
    # answers differently from the catch-all.
    both = _enforcement_scan(_wsgi.string_match_guard(_wsgi.flask_app(catch_all=True)))
    assert _rules(both) == {"signature-bypass-path"}
    assert both.findings[0].confidence == "medium"
    # A catch-all that echoes the path cannot be compared: untested, not passed.
    echo = _enforcement_scan(_wsgi.catch_all_receiver(echo_path=True))
    assert _rules(echo) == set()
    assert any("catch-all" in r for r in _untested(echo)["signature-bypass-path"])


def test_verify_if_present_is_signature_not_enforced_and_a_replay_is_tried_with_the_secret() -> None:
    report = _enforcement_scan(_wsgi.catch_all_receiver(enforces=False), secret=_wsgi.SECRET)
    assert _rules(report) == {"signature-not-enforced", "replay-accepted"}
    # github signs no timestamp: stale timestamps cannot be tried, and the report says so.
    assert any("signs no timestamp" in r for r in _untested(report)["stale-timestamp-accepted"])


def test_a_signed_delivery_the_endpoint_refuses_leaves_the_replay_untested() -> None:
    report = _enforcement_scan(_wsgi.catch_all_receiver(), secret="not-the-secret")
    assert _rules(report) == set()
    assert any("not accepted (401)" in r for r in _untested(report)["replay-accepted"])


def test_a_budget_cut_is_listed_under_the_rules_it_leaves_open() -> None:
    app = _wsgi.string_match_guard(_wsgi.flask_app())
    with _wsgi.serve(app) as url:
        target = ScanTarget(url, probe_body=b"x" * 1000)
        report = run_scan(target, Budget(bytes=4 * 1024, seconds=30, request_timeout=2.0), selection=ONLY)
    assert report.enforcement is not None and len(report.enforcement.probes) == 4
    untested = _untested(report)
    assert any("byte budget" in r for r in untested["signature-bypass-path"])
    assert any(u.what.startswith("enforcement: spelling") for u in report.untested)


def test_stale_timestamps_for_a_timestamped_scheme() -> None:
    with _wsgi.serve(_wsgi.stripe_without_age_check()) as url:
        started = time.time()
        report = run_scan(ScanTarget(url, scheme="stripe", secret=_wsgi.SECRET), QUICK, selection=ONLY)
    assert _rules(report) == {"stale-timestamp-accepted", "replay-accepted"}
    assert report.enforcement is not None
    stale = report.enforcement.of(ProbeKind.STALE_PAST, ProbeKind.STALE_FUTURE)
    assert [round((p.timestamp or 0) - started, -2) for p in stale] == [-3600, 3600]
    assert all(p.accepted for p in stale)


def _stripe_remembering(key_of: str) -> Any:
    """A Stripe receiver that verifies like Stripe's libraries and refuses a delivery it saw before,
    remembering it by ``key_of``: the header's ``text``, or the ``signature`` value that verified."""
    from hmacguard.schemes import get_scheme

    scheme = get_scheme("stripe")
    seen: set[str] = set()
    inner = _wsgi.stripe_without_age_check()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        header = environ.get("HTTP_STRIPE_SIGNATURE", "")
        captured: list[str] = []

        def capture(status: str, headers: Any) -> Any:
            captured.append(status)
            return start_response(status, headers)

        if key_of == "text":
            key = header
        else:
            try:
                key = min(s.hex() for s in scheme.parse({"Stripe-Signature": header}).signatures)
            except Exception:
                key = header
        if key in seen:
            return _wsgi._answer(start_response, "409 Conflict", b"already processed")
        out = list(inner(environ, capture))
        if captured and captured[0].startswith("200"):
            seen.add(key)
        return out

    return app


@pytest.mark.parametrize(("key_of", "found"), [("text", True), ("signature", False)])
def test_a_receiver_remembering_the_header_text_is_caught_by_the_respelled_replay(
    key_of: str, found: bool
) -> None:
    with _wsgi.serve(_stripe_remembering(key_of)) as url:
        report = run_scan(ScanTarget(url, scheme="stripe", secret=_wsgi.SECRET), QUICK, selection=ONLY)
    assert report.enforcement is not None
    answers = [(p.kind.value, p.exchange.status) for p in report.enforcement.of(
        ProbeKind.SIGNED, ProbeKind.REPLAY, ProbeKind.REPLAY_RESPELLED
    )]  # fmt: skip
    assert answers == [("signed", 200), ("replay", 409), ("replay-respelled", 200 if found else 409)]
    assert ("replay-accepted" in _rules(report)) is found


def test_the_guard_on_stripe_refuses_the_respelled_replay() -> None:
    """The same scan proves the fix: hmacguard's guard keys a Stripe delivery by its digest."""
    from hmacguard import Verifier, WSGIGuard

    def ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        _wsgi._body(environ)  # by its Content-Length: wsgiref's input never ends by itself
        return _wsgi._answer(start_response, "200 OK", b"{}")

    guard = WSGIGuard(ok, verifier=Verifier("stripe", secrets=_wsgi.SECRET), paths=["/webhook"])
    with _wsgi.serve(guard) as url:
        report = run_scan(ScanTarget(url, scheme="stripe", secret=_wsgi.SECRET), QUICK, selection=ONLY)
    assert report.enforcement is not None
    assert [
        p.exchange.status for p in report.enforcement.of(ProbeKind.REPLAY, ProbeKind.REPLAY_RESPELLED)
    ] == [409, 409]
    assert not _rules(report) & ENFORCEMENT_RULES
