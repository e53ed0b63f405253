"""`make demo` runs end to end: memory table, two scans whose grades tell the story, an HTML report."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from hmacguard.commands.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_scans_before_and_after_and_writes_the_html(tmp_path: Path) -> None:
    console = Console(record=True, width=140)
    path = run_demo(console, html=tmp_path / "demo.html")
    text = console.export_text()
    assert "flask-get-data: F" in text
    assert "flask-guarded: A (100/100)" in text
    assert "unbounded-body" in text and "memory-amplification" in text
    html = path.read_text()
    assert '<section id="scan-1"' in html and '<section id="scan-2"' in html
    assert html.count("<svg") >= 2
