"""The audit on code nobody wrote for it: the lab's targets, and installed third-party packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hmacguard.audit import audit
from hmacguard.lab.targets import TARGETS

LAB_APPS = Path(__file__).parents[2] / "src" / "hmacguard" / "lab" / "apps"

#: What each vulnerable lab target's documented flaw must produce (file -> rules).
LAB_EXPECTED = {
    "flask_get_data.py": {"py-unbounded-body-hmac", "flask-max-content-length"},
    "flask_content_length_check.py": {
        "py-content-length-guard-bypass",
        "py-stream-line-iteration",
        "flask-max-content-length",
    },
    "django_body_cache.py": {
        "py-body-retained-global",
        "django-upload-limit",
        "py-unbounded-body-hmac",
    },
    "django_middleware_attach.py": {
        "py-body-attached-to-request",
        "py-body-retained-global",
        "django-upload-limit",
        "py-unbounded-body-hmac",
    },
    "fastapi_body.py": {"py-unbounded-body-hmac", "starlette-body-limit"},
    "express_concat.js": {"js-unbounded-body-concat"},
    "express_json_limit.js": {"js-parser-limit-stream-bypass"},
}


def _by_file() -> dict[str, set[str]]:
    result = audit([LAB_APPS])
    assert result.diagnostics == ()
    found: dict[str, set[str]] = {}
    for f in result.findings:
        found.setdefault(Path(f.location.path or "").name, set()).add(f.rule)
    return found


def test_every_documented_lab_flaw_is_found_and_nothing_else() -> None:
    assert _by_file() == LAB_EXPECTED


def test_correct_targets_get_no_finding() -> None:
    found = _by_file()
    correct = [t for t in TARGETS.values() if not t.vulnerable]
    assert correct
    for target in correct:
        module = target.app.split(":")[0].rsplit(".", 1)[-1] + ".py"
        assert module not in found, (target.name, found.get(module))
    assert "flask_streaming_capped.py" not in found and "django_stateless.py" not in found


def test_every_vulnerable_target_has_a_finding() -> None:
    found = _by_file()
    for target in TARGETS.values():
        # Enforcement flaws (unsigned or replayed requests accepted) are the scan's to find, and so
        # are flaws across requests (each bounded, many held at once); the audit's rules are about
        # how one request's body is read, kept and compared.
        if not target.vulnerable or target.enforcement or target.across_requests:
            continue
        module = (
            target.app if target.app.endswith(".js") else target.app.split(":")[0].rsplit(".", 1)[-1] + ".py"
        )
        assert found.get(module), target.name


def _package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pytest.skip(f"{name} is not installed")
    return Path(spec.origin).parent


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        # github-webhook hashes request.data (Flask) for the signature: whole body, no cap of its own.
        ("github_webhook", [("webhook.py", "py-unbounded-body-hmac")]),
        # App.start()'s development server (http.server) reads Content-Length bytes with no cap.
        ("slack_bolt", [("app.py", "py-unbounded-body-read")]),
        ("flask", []),
        ("starlette", []),
    ],
)
def test_installed_packages(package: str, expected: list[tuple[str, str]]) -> None:
    result = audit([_package(package)])
    assert result.diagnostics == ()
    got = [(Path(f.location.path or "").name, f.rule) for f in result.findings]
    assert got == expected
