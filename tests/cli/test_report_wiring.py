"""audit and leaks write every report format they offer, to a file with --output."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "src" / "hmacguard" / "lab" / "apps"


def hmacguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hmacguard", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("fmt", ["html", "junit"])
def test_audit_formats(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"audit.{fmt}"
    proc = hmacguard("audit", str(APPS / "flask_get_data.py"), "--format", fmt, "-o", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    text = out.read_text()
    if fmt == "junit":
        assert int(ET.fromstring(text).get("failures") or 0) >= 1
    else:
        assert "<html" in text and "flask_get_data.py" in text


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["html", "terminal"])
def test_leaks_formats_to_a_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"leaks.{fmt}"
    proc = hmacguard(
        "leaks", "hmacguard.lab.apps.django_body_cache:application", "--scheme", "github",
        "--secret", "hmacguard-lab-secret", "-n", "60", "--format", fmt, "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    text = out.read_text()
    assert "django_body_cache.py" in text
    if fmt == "html":
        assert "<svg" in text
    else:
        assert "SIGNATURE_CACHE[request_id]" in text
