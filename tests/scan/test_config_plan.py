"""Bad input is refused before anything is sent; the plan fits the budget and says what it leaves."""

from __future__ import annotations

import pytest

from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.scan import Budget, ScanTarget, plan_scan
from hmacguard.scan.config import GiB, KiB, MiB


@pytest.mark.parametrize(
    "url",
    ["", "127.0.0.1:8000/webhook", "ftp://127.0.0.1/", "http://", "http://127.0.0.1:99999/",
     "http://user:pw@127.0.0.1/", "http://127.0.0.1/#frag", "http://127.0.0.1/a b"],
)  # fmt: skip
def test_malformed_url_is_a_target_error(url: str) -> None:
    with pytest.raises(TargetError):
        ScanTarget(url)


def test_remote_target_needs_allow_remote() -> None:
    with pytest.raises(TargetError, match="--allow-remote"):
        ScanTarget("http://10.9.8.7:8000/webhook").resolve()
    assert ScanTarget("http://10.9.8.7:8000/webhook", allow_remote=True).resolve() == ("10.9.8.7",)
    assert set(ScanTarget("http://localhost:8000/").resolve()) <= {"127.0.0.1", "::1"}
    assert ScanTarget("http://[::1]:8000/").resolve() == ("::1",)


def test_url_parts() -> None:
    parsed = ScanTarget("https://localhost/hook?x=1").parsed()
    assert (parsed.tls, parsed.port, parsed.path, parsed.authority) == (True, 443, "/hook?x=1", "localhost")
    assert ScanTarget("http://[::1]:81").parsed().authority == "[::1]:81"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scheme": "gitlab"},
        {"scheme": "github", "generic_header": "X-Sig"},
        {"scheme": "generic", "generic_encoding": "base32"},
        {"scheme": "generic", "generic_algorithm": "md5"},
        {"scheme": "standard-webhooks", "secret": "not base64!"},
        {"secret": ""},
        {"method": "GET"},
        {"headers": {"Content-Length": "5"}},
        {"headers": {"X-Bad": "a\r\nInjected: 1"}},
        {"content_type": "json"},
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ScanTarget("http://127.0.0.1:8000/webhook", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bytes": 100},
        {"seconds": 0},
        {"request_timeout": -1},
        {"ladder": (0, 1024)},
        {"ladder": (10 * MiB,), "max_size": MiB},
        {"burst_requests": 2, "burst_concurrency": 4},
        {"retention_rounds": 2},
        {"bisect_precision": 0},
        {"held_uploads": 1},
        {"held_uploads": 1001},
        {"held_size": 4095},
        {"held_size": 16 * MiB + 1},
        {"held_sources": 0},
        {"held_sources": 251},
    ],
)
def test_bad_budgets_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_ladder_is_sorted_and_cut_at_max_size() -> None:
    budget = Budget(ladder=(10 * MiB, KiB, MiB, 100 * MiB, MiB), max_size=20 * MiB)
    assert budget.ladder == (KiB, MiB, 10 * MiB) and budget.top == 10 * MiB


def test_default_plan_fits_one_gib_and_names_what_needs_memory() -> None:
    target = ScanTarget("http://127.0.0.1:8000/webhook")
    plan = plan_scan(target, Budget(), memory=False)
    assert [p.name for p in plan.phases] == [
        "baseline", "enforcement", "held-uploads", "retention", "ladder", "chunked", "content-type",
        "expect", "gzip", "bisect", "burst",
    ]  # fmt: skip
    assert plan.worst_bytes <= GiB
    assert [(u.what, "--pid" in u.reason) for u in plan.untested_worst_case] == [
        ("held-uploads", True), ("retention", True),
    ]  # fmt: skip
    with_memory = plan_scan(target, Budget(), memory=True)
    assert with_memory.untested_worst_case == ()
    # Later phases hold their bytes back while the ladders run.
    assert with_memory.reserve_after("ladder") >= 23 * MiB


def test_small_budget_plan_lists_the_rungs_it_cannot_afford() -> None:
    plan = plan_scan(ScanTarget("http://127.0.0.1:8000/webhook"), Budget(bytes=64 * MiB), memory=False)
    untested = {u.what for u in plan.untested_worst_case}
    assert f"ladder {100 * MiB:,} bytes" in untested
    assert f"chunked {100 * MiB:,} bytes" in untested
