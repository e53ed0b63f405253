"""The pytest plugin, as a user meets it: installed by entry point, run in a child pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmacguard.errors import ConfigurationError
from hmacguard.leaks.pytest_plugin import parse_budget
from tests.leaks._run import ROOT, run_pytest

pytestmark = pytest.mark.slow

TESTS = """
import hashlib

import pytest

from tests.leaks import apps

KEPT = []


@pytest.mark.leak_budget("1 KiB", calls=60)
def test_body_keeps_4k_per_call():
    KEPT.append(bytes(4096))  # THE-LEAK


@pytest.mark.leak_budget("1 KiB", calls=60)
def test_body_keeps_nothing():
    hashlib.sha256(bytes(4096)).hexdigest()


@pytest.mark.leak_budget("1 KiB", calls=40)
async def test_async_body_keeps_4k_per_call():
    KEPT.append(bytes(4096))


@pytest.mark.leak_budget("8 KiB", calls=60)
def test_body_within_a_generous_budget():
    KEPT.append(bytes(1024))


@pytest.mark.leak_budget("1 KiB", requests=80)
def test_app_over_budget(leak_check):
    leak_check(apps.flask_leak, body_size=8192, scheme="github", secret="hmacguard-lab-secret")


@pytest.mark.leak_budget("1 KiB", requests=80)
def test_app_under_budget(leak_check):
    report = leak_check(apps.flask_clean, body_size=8192, scheme="github", secret="hmacguard-lab-secret")
    assert report.requests == 80


def test_fixture_without_marker(leak_check):
    report = leak_check(apps.clean_call, requests=40)
    assert report.unit == "call" and report.sites == ()
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    directory = tmp_path_factory.mktemp("plugin")
    (directory / "test_user.py").write_text(TESTS)
    # Importable "tests.leaks.apps": the child runs from its own directory with the repository on the path.
    proc = run_pytest(directory, "-rA", f"--rootdir={directory}", str(directory / "test_user.py"))
    return proc.stdout + proc.stderr, proc.returncode


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_marker_and_fixture_pass_and_fail_as_budgeted(outcome: tuple[str, int]) -> None:
    out, code = outcome
    assert code == 1, out
    for name in (
        "test_body_keeps_nothing",
        "test_body_within_a_generous_budget",
        "test_app_under_budget",
        "test_fixture_without_marker",
    ):
        assert f"PASSED test_user.py::{name}" in out, out
    assert "FAILED test_user.py::test_body_keeps_4k_per_call" in out, out
    assert "FAILED test_user.py::test_app_over_budget" in out, out
    assert "FAILED test_user.py::test_async_body_keeps_4k_per_call" in out, out


def test_failure_names_the_line_and_the_bytes(outcome: tuple[str, int]) -> None:
    out, _ = outcome
    where = f"test_user.py:{_line(TESTS, '# THE-LEAK')}"
    assert where in out, out
    assert "KEPT.append(bytes(4096))  # THE-LEAK" in out
    assert "4.0 KiB retained per call, over the budget of 1.0 KiB" in out, out
    assert "Traceback" not in out and "hmacguard-lab-secret" not in out
    # The app case names the app's line, with the per-request figure.
    apps_py = ROOT / "tests" / "leaks" / "apps.py"
    assert f"apps.py:{_line(apps_py.read_text(), '# FLASK-LEAK')}" in out, out
    assert "retained per request, over the budget of 1.0 KiB" in out


def test_marker_is_registered(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "--markers")
    assert "@pytest.mark.leak_budget(budget" in proc.stdout, proc.stdout


def test_budget_strings() -> None:
    assert parse_budget("1 KiB") == 1024
    assert parse_budget("1k") == 1024
    assert parse_budget("2kb") == 2000
    assert parse_budget("1.5 MiB") == 1.5 * 1024 * 1024
    assert parse_budget("512 B") == 512
    assert parse_budget(100) == 100
    for bad in ("lots", "-1", "1 iB", "", "1 XB"):
        with pytest.raises(ConfigurationError):
            parse_budget(bad)
    with pytest.raises(ConfigurationError):
        parse_budget(-5)
