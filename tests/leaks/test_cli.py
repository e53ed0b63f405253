"""``hmacguard leaks``: exit codes, one-line errors, terminal and JSON output."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hmacguard.cli import app
from hmacguard.lab import LAB_SECRET
from tests.leaks._run import run_cli
from tests.leaks.apps import marked_line

runner = CliRunner()
SIGN = ("--scheme", "github", "--secret", LAB_SECRET)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["leaks", *args])
    return result.exit_code, result.stdout, result.stderr


def test_leak_exits_1_with_the_line_in_json() -> None:
    code, out, _ = invoke(
        "tests.leaks.apps:flask_leak", *SIGN, "-n", "60", "--body-size", "8KiB", "--format", "json"
    )
    assert code == 1
    report = json.loads(out)
    [finding] = report["findings"]
    assert finding["rule"] == "line-retains-memory"
    assert finding["location"]["path"] == "tests/leaks/apps.py"
    assert finding["location"]["line"] == marked_line("FLASK-LEAK")
    values = finding["evidence"]["values"]
    assert abs(values["bytes_per_request"] - 8192) <= 0.25 * 8192
    assert values["trend"] == "growing" and values["body_size"] == 8192


def test_terminal_report_names_line_and_source() -> None:
    code, out, _ = invoke("tests.leaks.apps:flask_leak", *SIGN, "-n", "60", "--body-size", "8KiB")
    assert code == 1
    assert f"tests/leaks/apps.py:{marked_line('FLASK-LEAK')}" in out
    assert "BODIES.append(body)" in out
    assert "growing" in out and "KiB" in out


def test_clean_app_exits_0() -> None:
    code, out, _ = invoke("tests.leaks.apps:flask_clean", *SIGN, "-n", "60", "--body-size", "4KiB")
    assert code == 0, out
    assert "No application line keeps" in out


def test_plateau_is_not_a_failure_by_default_but_can_be() -> None:
    args = ("tests.leaks.apps:flask_lru", *SIGN, "-n", "200", "--body-size", "4KiB", "--format", "json")
    code, out, _ = invoke(*args)
    assert code == 0
    assert [s["trend"] for s in json.loads(out)["sites"]] == ["plateau"]
    code, _, _ = invoke(*args, "--fail-on", "info")
    assert code == 1


def test_asgi_and_unsuccessful_requests_warn() -> None:
    code, out, _ = invoke(
        "tests.leaks.apps:fastapi_leak", "-n", "40", "--path", "/missing", "--format", "json"
    )
    assert code == 0
    report = json.loads(out)
    assert set(report["responses"]) == {"404"}
    assert "no request succeeded" in report["warnings"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a TARGET"),
        (("nosuchmodule:app",), "cannot import 'nosuchmodule'"),
        (("tests.leaks.apps:nothing",), "has no attribute 'nothing'"),
        (("tests.leaks.apps",), "module:attribute"),
        (("tests.leaks.apps:HERE",), "not callable"),
        (("tests.leaks.apps:flask_clean", "--scheme", "nope", "--secret", "s"), "unknown scheme 'nope'"),
        (("tests.leaks.apps:flask_clean", "--scheme", "github"), "both a scheme and a secret"),
        (("tests.leaks.apps:flask_clean", "--body-size", "lots"), "not a size"),
        (("tests.leaks.apps:flask_clean", "--path", "webhook"), "must start with '/'"),
        (("tests.leaks.apps:flask_clean", "-H", "no colon"), "Name: value"),
        (("tests.leaks.apps:flask_clean", "--fail-on", "severe"), "unknown severity"),
        (("tests.leaks.apps:flask_clean", "--body-size", "100MiB"), "a leaking app keeps all of it"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2, (out, err)
    assert message in err, err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err


def test_real_command_line_process() -> None:
    proc = run_cli("tests.leaks.apps:flask_clean", *SIGN, "-n", "40", "--body-size", "1KiB")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("tests.leaks.apps:flask_clean", "--requests", "2")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_django_settings_module() -> None:
    # Its own interpreter: Django's settings are process-wide.
    from pathlib import Path

    urls = Path(__file__).parent / "django_site" / "urls.py"
    proc = run_cli(
        "--django-settings", "tests.leaks.django_site.settings", *SIGN, "-n", "80", "--format", "json"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    [site] = report["sites"]
    assert site["path"] == "tests/leaks/django_site/urls.py"
    assert site["line"] == marked_line("DJANGO-SETTINGS-LEAK", urls)
    assert abs(site["bytes_per_request"] - 65536) <= 0.25 * 65536
    assert report["target"] == "django:tests.leaks.django_site.settings"
