"""Scan history: every ``hmacguard scan --save`` kept in one local SQLite file.

Each row stores the scan's own versioned JSON (``ScanReport.to_dict()``, ``schema_version`` inside)
untouched, plus a few columns copied out of it so that ``hmacguard history`` can list scans without
parsing every report. The file lives under the user's data directory unless ``--history PATH`` (or
``$HMACGUARD_HISTORY``) names another::

    Linux, BSD   $XDG_DATA_HOME/hmacguard/history.sqlite3   (default ~/.local/share/...)
    macOS        ~/Library/Application Support/hmacguard/history.sqlite3
    Windows      %LOCALAPPDATA%\\hmacguard\\history.sqlite3

A scan is named, wherever one is expected (``hmacguard diff A B``), by its id (``12``), by ``latest``
or ``latest~N`` (the N-th before the latest), or by the path of a JSON report written by
``hmacguard scan --format json``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.scan.model import ScanReport

__all__ = [
    "HISTORY_ENV",
    "History",
    "HistoryEntry",
    "default_history_path",
    "load_scan",
    "save_scan",
    "scan_from_json",
]

#: Environment variable naming the history file (``--history`` wins over it).
HISTORY_ENV = "HMACGUARD_HISTORY"
#: Bumped when the table layout changes; older files are migrated forward, newer ones refused.
_LAYOUT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    saved_at      TEXT NOT NULL,
    started_at    TEXT,
    url           TEXT NOT NULL,
    method        TEXT NOT NULL,
    score         INTEGER,
    grade         TEXT,
    findings      INTEGER NOT NULL,
    label         TEXT,
    schema_version TEXT,
    report        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scans_by_url ON scans (url, id);
"""
_LATEST = re.compile(r"^latest(?:~(\d+))?$")


def default_history_path() -> Path:
    """Where ``--save`` writes when neither ``--history`` nor ``$HMACGUARD_HISTORY`` says."""
    explicit = os.environ.get(HISTORY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        # The XDG spec says a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "hmacguard" / "history.sqlite3"


@dataclass(frozen=True)
class HistoryEntry:
    """One saved scan, as ``hmacguard history`` lists it."""

    id: int
    saved_at: str
    started_at: str | None
    url: str
    method: str
    score: int | None
    grade: str | None
    findings: int
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def scan_from_json(data: Any, *, origin: str = "report") -> dict[str, Any]:
    """Check that ``data`` is a scan report (``ScanReport.to_dict()``, or the versioned JSON envelope
    of ``--format json`` with ``kind: scan``) and return it as a dict; ConfigurationError otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise ConfigurationError(f"{origin} is not an hmacguard scan report (no findings list)")
    if data.get("kind") == "openapi-scan":
        raise ConfigurationError(
            f"{origin} is an OpenAPI scan of several endpoints; save or diff one endpoint's scan instead"
        )
    if data.get("kind") not in (None, "scan"):
        raise ConfigurationError(f"{origin} is an hmacguard {data.get('kind')} report, not a scan")
    target = data.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("url"), str):
        raise ConfigurationError(f"{origin} names no scanned URL (target.url)")
    return data


def _row_entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        id=int(row["id"]),
        saved_at=str(row["saved_at"]),
        started_at=row["started_at"],
        url=str(row["url"]),
        method=str(row["method"]),
        score=row["score"],
        grade=row["grade"],
        findings=int(row["findings"]),
        label=row["label"],
    )


class History:
    """A history file, opened (and created, with its folders) on first use. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_history_path()
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> History:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if self.path.is_dir():
            raise ConfigurationError(f"history path {self.path} is a directory, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=10)
            db.row_factory = sqlite3.Row
            layout = int(db.execute("PRAGMA user_version").fetchone()[0])
            if layout > _LAYOUT:
                db.close()
                raise ConfigurationError(
                    f"history {self.path} was written by a newer hmacguard (layout {layout})"
                )
            with db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {_LAYOUT}")
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"history {self.path} is not a usable SQLite file: {exc}") from None
        self._db = db
        return db

    def save(self, report: ScanReport | Mapping[str, Any], *, label: str | None = None) -> int:
        """Store one scan; returns its id."""
        data = report.to_dict() if isinstance(report, ScanReport) else scan_from_json(dict(report))
        target = data["target"]
        saved_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        db = self._connect()
        with db:
            cursor = db.execute(
                "INSERT INTO scans (saved_at, started_at, url, method, score, grade, findings, label,"
                " schema_version, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    saved_at,
                    data.get("started_at"),
                    target["url"],
                    target.get("method") or "POST",
                    data.get("score"),
                    data.get("grade"),
                    len(data["findings"]),
                    label,
                    data.get("schema_version"),
                    json.dumps(data, ensure_ascii=False),
                ),
            )
        return int(cursor.lastrowid or 0)

    def entries(self, *, url: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """The latest ``limit`` scans (of ``url`` only, when given), newest first."""
        db = self._connect()
        columns = "id, saved_at, started_at, url, method, score, grade, findings, label"
        if url is None:
            rows = db.execute(f"SELECT {columns} FROM scans ORDER BY id DESC LIMIT ?", (limit,))  # noqa: S608
        else:
            rows = db.execute(
                f"SELECT {columns} FROM scans WHERE url = ? ORDER BY id DESC LIMIT ?",  # noqa: S608
                (url, limit),
            )
        return [_row_entry(row) for row in rows]

    def get(self, ref: str) -> dict[str, Any]:
        """The stored report named by ``ref``: an id, ``latest`` or ``latest~N``."""
        db = self._connect()
        text = ref.strip()
        latest = _LATEST.match(text)
        if latest:
            back = int(latest.group(1) or 0)
            row = db.execute("SELECT report FROM scans ORDER BY id DESC LIMIT 1 OFFSET ?", (back,)).fetchone()
            if row is None:
                raise ConfigurationError(f"history {self.path} holds no scan {text!r}")
        elif text.isdigit():
            row = db.execute("SELECT report FROM scans WHERE id = ?", (int(text),)).fetchone()
            if row is None:
                raise ConfigurationError(f"history {self.path} holds no scan with id {text}")
        else:
            raise ConfigurationError(f"not a scan reference: {ref!r} (an id, latest, latest~N or a file)")
        return scan_from_json(json.loads(row["report"]), origin=f"scan {text}")


def load_scan(ref: str, history: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A scan report by reference: the path of a JSON report if that file exists, else a history ref."""
    path = Path(ref).expanduser()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"{ref} is not a JSON report: {exc}") from None
        return scan_from_json(data, origin=ref)
    if not (_LATEST.match(ref.strip()) or ref.strip().isdigit()):
        raise ConfigurationError(f"no such report file, and not a history reference: {ref!r}")
    with History(history) as store:
        return store.get(ref)


def save_scan(
    report: ScanReport, history: str | os.PathLike[str] | None = None, *, label: str | None = None
) -> tuple[int, Path]:
    """``scan --save``: store ``report``; returns (its id, the history file's path)."""
    with contextlib.closing(History(history)) as store:
        return store.save(report, label=label), store.path
