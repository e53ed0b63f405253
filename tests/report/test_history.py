"""Scan history and diff: scans saved in SQLite, listed, and compared by `hmacguard diff`.

The acceptance: a scan of flask-get-data and one of flask-guarded (each under its real server),
saved, then `hmacguard diff 1 2` lists the findings the guard fixed, the grade change and the body
limit that appeared.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hmacguard.cli import app
from hmacguard.errors import ConfigurationError
from hmacguard.report.json import render_json
from hmacguard.scan.diff import diff_scans, effective_limits
from hmacguard.scan.history import History, default_history_path, load_scan, save_scan
from tests.report._lab import lab_scan

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "nested" / "scans.sqlite3"
    first, where = save_scan(lab_scan("flask-get-data"), path, label="before the guard")
    second, _ = save_scan(lab_scan("flask-guarded"), path)
    assert (first, second, where) == (1, 2, path)
    return path


@pytest.mark.slow
def test_diff_of_vulnerable_and_guarded_lists_the_fixed_findings(history: Path) -> None:
    before = {f.rule for f in lab_scan("flask-get-data").findings}
    assert before >= {"unbounded-body", "memory-amplification"}
    assert lab_scan("flask-guarded").findings == ()

    code, out = invoke("diff", "1", "2", "--history", str(history))
    assert code == 0, out
    fixed = out.split("Fixed (")[1].split("New (")[0]
    for rule in before:
        assert rule in fixed
    assert f"Fixed ({len(before)})" in out and "New (0)" in out
    assert f"Grade {lab_scan('flask-get-data').grade} -> A" in out
    # flask-guarded caps every framing at 1 MiB: both framings changed from unbounded to bounded.
    assert "content-length: no limit seen" in out and "chunked: no limit seen" in out
    assert out.count("changed") >= 2

    code, out = invoke("diff", "2", "1", "--history", str(history), "--format", "json")
    assert code == 1  # reversed: the vulnerable scan brings new findings at or above "low"
    data = json.loads(out)
    assert {f["rule"] for f in data["new"]} == before and data["fixed"] == []
    assert data["score_change"] == lab_scan("flask-get-data").score - 100


@pytest.mark.slow
def test_history_lists_newest_first_and_latest_refs(history: Path) -> None:
    code, out = invoke("history", "--history", str(history), "--format", "json")
    assert code == 0, out
    scans = json.loads(out)["scans"]
    assert [s["id"] for s in scans] == [2, 1]
    assert scans[1]["label"] == "before the guard" and scans[0]["grade"] == "A"
    code, out = invoke("history", "--history", str(history))
    assert code == 0 and "before the guard" in out
    with History(history) as store:
        assert store.get("latest")["target"] == store.get("2")["target"]
        assert store.get("latest~1")["grade"] == lab_scan("flask-get-data").grade
        assert len(store.entries(url=lab_scan("flask-guarded").url)) == 1
        with pytest.raises(ConfigurationError, match="no scan with id 9"):
            store.get("9")


@pytest.mark.slow
def test_diff_accepts_json_report_files_and_a_history_mix(history: Path, tmp_path: Path) -> None:
    report = tmp_path / "guarded.json"
    report.write_text(render_json(lab_scan("flask-guarded")))
    diff = diff_scans(load_scan("1", history), load_scan(str(report), history))
    assert {f["rule"] for f in diff.fixed} == {f.rule for f in lab_scan("flask-get-data").findings}
    limits = effective_limits(load_scan(str(report)))
    assert limits["content-length"].bounded and limits["chunked"].bounded


def test_effective_limit_is_the_loosest_variant_and_small_moves_are_not_changes() -> None:
    def scan(limits: list[tuple[str, int | None, int | None]]) -> dict[str, object]:
        return {
            "target": {"url": "http://127.0.0.1:1/h"},
            "findings": [],
            "budget": {"bisect_precision": 0.1},
            "limits": [{"variant": v, "largest_accepted": a, "smallest_refused": r} for v, a, r in limits],
        }

    a = scan([("content-length json", 1 << 20, 1100000), ("content-length text", 1 << 20, 1150000),
              ("content-length form", None, 1024), ("chunked json", 64 << 20, None)])  # fmt: skip
    limits = effective_limits(a)
    assert (
        limits["content-length"].refused == 1150000
        and limits["content-length"].variant == "content-length text"
    )
    assert not limits["chunked"].bounded
    b = scan([("content-length json", 1 << 20, 1120000), ("chunked json", 1 << 20, 1100000)])
    changes = {c.framing: c for c in diff_scans(a, b).limit_changes}
    assert set(changes) == {"chunked"}  # 1.15 MB -> 1.12 MB is within the bisection precision
    c = scan([("content-length json", 8 << 20, 9 << 20), ("chunked json", 1 << 20, 1100000)])
    assert {ch.framing for ch in diff_scans(b, c).limit_changes} == {"content-length"}


def test_bad_history_files_and_refs_are_one_line_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    code, out = invoke("history", "--history", str(junk))
    assert code == 2 and "not a usable SQLite file" in out and "Traceback" not in out
    code, out = invoke("diff", "nope", "latest", "--history", str(tmp_path / "h.sqlite3"))
    assert code == 2 and "not a history reference" in out
    code, out = invoke("diff", "latest", "latest~1", "--history", str(tmp_path / "empty.sqlite3"))
    assert code == 2 and "holds no scan" in out
    other = tmp_path / "audit.json"
    other.write_text(json.dumps({"schema": "hmacguard-report", "kind": "audit", "findings": []}))
    code, out = invoke("diff", str(other), str(other))
    assert code == 2 and "audit report, not a scan" in out
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    code, out = invoke("history", "--history", str(newer))
    assert code == 2 and "newer hmacguard" in out


def test_default_path_follows_env_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HMACGUARD_HISTORY", str(tmp_path / "h.db"))
    assert default_history_path() == tmp_path / "h.db"
    monkeypatch.delenv("HMACGUARD_HISTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_history_path() == tmp_path / "xdg" / "hmacguard" / "history.sqlite3"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_history_path() == Path.home() / ".local" / "share" / "hmacguard" / "history.sqlite3"
