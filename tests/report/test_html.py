"""The HTML report: self-contained, and rendered by a real browser with its plots drawn.

The acceptance test scans a real lab target (flask-get-data under gunicorn, memory observed), writes
the page, and has Debian's headless Chromium (installed by .ci/run) take a screenshot and dump the
DOM: the four plots must be in the DOM as SVG and drawn on the screenshot (in both columns of the
plot grid, in the plots' own colours). Without chromium the browser tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hmacguard.audit import audit
from hmacguard.lab import LAB_SECRET
from hmacguard.leaks import Recipe, find_leaks
from hmacguard.report.html import render_audit_html, render_leaks_html, render_scan_html
from hmacguard.report.html.plots import reconstruct_schedule
from tests.report._lab import lab_scan

LAB_APPS = Path(__file__).parents[2] / "src" / "hmacguard" / "lab" / "apps"
SCAN_PLOTS = {"rss-by-size", "retention", "latency-by-size", "burst"}
# matplotlib's blue and red as the plots use them (the page's own CSS uses neither).
PLOT_BLUE = (0x1F, 0x77, 0xB4)
PLOT_RED = (0xD6, 0x27, 0x28)
WIDTH, HEIGHT = 1280, 2400
#: Summed RGB distance: tight enough that the page's own reds (severity pills) do not count.
TOLERANCE = 9


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return found


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page`` with a profile of its own; no network is needed or used."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *extra, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html.replace('href="https://cwe', "")), (
        "the page references a remote resource"
    )
    assert not re.search(r"url\(\s*['\"]?https?:", html)
    assert "@import" not in html


def plot_names(html: str) -> set[str]:
    return set(re.findall(r'<svg class="plot" data-plot="([a-z-]+)"', html))


@pytest.fixture(scope="module")
def scan_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = lab_scan("flask-get-data")
    page = tmp_path_factory.mktemp("html") / "scan.html"
    page.write_text(render_scan_html(report), encoding="utf-8")
    return page


@pytest.mark.slow
def test_scan_page_is_self_contained_with_every_plot(scan_page: Path) -> None:
    html = scan_page.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert plot_names(html) == SCAN_PLOTS
    report = lab_scan("flask-get-data")
    assert f">{report.grade}</div>" in html
    for finding in report.findings:
        assert finding.rule in html
        # Jinja escapes; the remediation text is there once escaped the same way.
        assert finding.remediation.replace("'", "&#39;").replace('"', "&#34;")[:60] in html
    assert "Body limits by variant" in html
    # The held uploads ran (memory observed): how many stayed open and what the server kept of them.
    held = report.held
    assert held is not None
    assert f"Held uploads:</strong> {held.held} of {held.opened} uploads" in html


@pytest.mark.slow
def test_scan_page_renders_in_chromium_with_its_plots_drawn(scan_page: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "scan.png"
    done = browse(scan_page, tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = image.convert("RGB")
        blue_left = blue_right = red = 0
        # Every second pixel is plenty to find plot lines and bars and keeps the loop quick.
        for y in range(0, HEIGHT, 2):
            for x in range(0, WIDTH, 2):
                r, g, b = pixels.getpixel((x, y))  # type: ignore[misc]
                if abs(r - PLOT_BLUE[0]) + abs(g - PLOT_BLUE[1]) + abs(b - PLOT_BLUE[2]) < TOLERANCE:
                    if x < WIDTH // 2:
                        blue_left += 1
                    else:
                        blue_right += 1
                elif abs(r - PLOT_RED[0]) + abs(g - PLOT_RED[1]) + abs(b - PLOT_RED[2]) < TOLERANCE:
                    red += 1
    # Both columns of the plot grid carry drawn data (lines, markers, bars), not empty frames.
    # (A page with the same layout and empty SVGs counts 0, 0 and 0 here.)
    assert blue_left > 150, blue_left
    assert blue_right > 150, blue_right
    assert red > 50, red

    dom = browse(scan_page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert plot_names(dom.stdout) == SCAN_PLOTS
    # Each plot has its axes and data as SVG paths in the live DOM.
    for svg in re.findall(r'<svg class="plot".*?</svg>', dom.stdout, re.DOTALL):
        assert svg.count("<path") >= 10


def test_audit_page_lists_findings_by_file_with_a_chart() -> None:
    result = audit([LAB_APPS])
    html = render_audit_html(result)
    assert_self_contained(html)
    assert plot_names(html) == {"findings"}
    for finding in result.findings:
        assert finding.rule in html
        assert str(finding.location.path) in html
    assert f'<div class="value">{len(result.findings)}</div>' in html


def test_leaks_page_plots_the_growing_line() -> None:
    from tests.leaks import apps

    recipe = Recipe(body_size=16 * 1024, scheme="github", secret=LAB_SECRET)
    report = find_leaks(apps.flask_leak, recipe, requests=60)
    assert report.growing
    html = render_leaks_html(report)
    assert_self_contained(html)
    assert plot_names(html) == {"leaks"}
    assert "BODIES.append(body)" in html
    assert "growing" in html


@pytest.mark.slow
def test_leaks_page_renders_in_chromium(tmp_path: Path) -> None:
    from tests.leaks import apps

    recipe = Recipe(body_size=16 * 1024, scheme="github", secret=LAB_SECRET)
    page = tmp_path / "leaks.html"
    page.write_text(render_leaks_html(find_leaks(apps.flask_leak, recipe, requests=60)), encoding="utf-8")
    dom = browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert plot_names(dom.stdout) == {"leaks"}


def test_burst_schedule_gives_each_request_to_the_first_free_connection() -> None:
    schedule = reconstruct_schedule([1.0, 3.0, 1.0, 1.0], workers=2)
    assert schedule == [(0.0, 1.0, 0), (0.0, 3.0, 1), (1.0, 1.0, 0), (2.0, 1.0, 0)]


@pytest.mark.slow
def test_several_scans_share_one_page_with_a_section_each() -> None:
    reports = [lab_scan("flask-get-data"), lab_scan("flask-guarded")]
    html = render_scan_html(reports)
    assert_self_contained(html)
    assert html.count('<section id="scan-') == 2
    for report in reports:
        assert f'<h2 class="mono">POST {report.url}</h2>' in html
    # The guarded target throttles forged requests: no retention plot, and the page says why.
    assert "The retention probe did not run" in html
