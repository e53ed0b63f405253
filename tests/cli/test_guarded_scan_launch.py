"""Issue 4's proof that the fix works: `hmacguard scan --launch` grades every guarded lab target A,
with no size, memory or rate finding, on a default scan (ladder up to 100 MiB, memory observed)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmacguard.cli import app
from hmacguard.lab import free_port, get_target

pytestmark = pytest.mark.slow

SIZE_MEMORY_RATE = {
    "unbounded-body", "high-limit", "chunked-bypass", "content-type-bypass", "late-rejection",
    "memory-amplification", "memory-retention", "memory-held-uploads", "no-rate-limit",
}  # fmt: skip


@pytest.mark.parametrize("name", ["flask-guarded", "django-guarded", "fastapi-guarded"])
def test_launch_scan_grades_the_guarded_target_a(name: str, tmp_path: Path) -> None:
    port = free_port()
    command = shlex.join(get_target(name).command(port))
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["scan", f"http://127.0.0.1:{port}/webhook", "--launch", command, "--format", "json", "-o", str(out),
         "--no-progress"],
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    document = json.loads(out.read_text())
    assert document["memory_source"].startswith("pid ")
    rules = {f["rule"] for f in document["findings"]}
    assert not rules & SIZE_MEMORY_RATE, document["findings"]
    assert document["grade"] == "A", (document["score"], document["findings"])
