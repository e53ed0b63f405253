"""The scan command's report formats, history, baseline and OpenAPI options, end to end on the lab."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hmacguard.lab import run_target
from tests.scan.test_openapi import five_operations

pytestmark = pytest.mark.slow

SMALL = [
    "--ladder",
    "1KiB,1MiB,16MiB",
    "--max-size",
    "16MiB",
    "--burst",
    "4",
    "--concurrency",
    "2",
    "--no-progress",
]


def hmacguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hmacguard", *args], capture_output=True, text=True, timeout=120
    )


def test_every_format_history_and_baseline(tmp_path: Path) -> None:
    history = str(tmp_path / "history.sqlite3")
    with run_target("flask-get-data") as t:
        outputs = {}
        for fmt in ("json", "html", "sarif", "junit"):
            out = tmp_path / f"scan.{fmt}"
            proc = hmacguard(
                "scan", t.url, *SMALL, "--format", fmt, "-o", str(out), "--save", "--history", history
            )
            assert proc.returncode == 1, proc.stderr  # unbounded-body at least
            assert "saved as scan" in proc.stderr
            outputs[fmt] = out.read_text()
        again = hmacguard(
            "scan", t.url, *SMALL, "--format", "json", "--baseline", str(tmp_path / "scan.json")
        )
    report = json.loads(outputs["json"])
    rules = {f["rule"] for f in report["findings"]}
    assert "unbounded-body" in rules
    assert "<svg" in outputs["html"] and "unbounded-body" in outputs["html"]
    sarif = json.loads(outputs["sarif"])
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == rules
    assert int(ET.fromstring(outputs["junit"]).get("failures") or 0) >= 1
    # Against its own baseline nothing is new: clean exit, no findings.
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["findings"] == []
    listing = hmacguard("history", "--history", history)
    assert listing.returncode == 0 and listing.stdout.count("POST") >= 4


def test_openapi_option_scans_the_signed_operations_and_its_json_is_a_baseline(tmp_path: Path) -> None:
    spec = tmp_path / "api.json"
    spec.write_text(json.dumps(five_operations()))
    first = tmp_path / "openapi.json"
    with run_target("django-stateless") as t:
        args = ("scan", "--openapi", str(spec), "--base-url", t.base_url, "--secret", t.secret,
                "--budget-bytes", "64MiB", "--format", "json", *SMALL)  # fmt: skip
        proc = hmacguard(*args, "-o", str(first))
        again = hmacguard(*args, "--baseline", str(first))
    assert proc.returncode == 1, proc.stderr  # no rate limit on django-stateless
    data = json.loads(first.read_text())
    # The shared envelope, as every other report: the bug was a bare document no baseline could read.
    assert (data["schema"], data["version"], data["kind"]) == ("hmacguard-report", 1, "openapi-scan")
    assert data["summary"]["findings"] == len(data["findings"]) > 0
    assert all(f["fingerprint"] for f in data["findings"])
    assert [(op["method"], op["path"]) for op in data["operations"]] == [
        ("POST", "/webhook"),
        ("PUT", "/webhook"),
    ]
    # Fed back as --baseline it is read, and every finding it has is known: clean exit.
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["findings"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "either an endpoint URL or --openapi"),
        (("--openapi", "x.json"), "--openapi needs --base-url"),
        (("http://127.0.0.1:9/x", "--openapi", "x.json"), "either an endpoint URL or --openapi"),
    ],
)
def test_url_and_openapi_misuse_is_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    proc = hmacguard("scan", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
