"""Helpers: run the CLI or a child pytest in a fresh interpreter.

Each Django lab module calls ``settings.configure`` when imported, so one process holds one Django
project: every Django case gets its own interpreter, as a gunicorn worker would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hmacguard.lab import LAB_SECRET

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "src" / "hmacguard" / "lab" / "apps"


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["HMACGUARD_LAB_SECRET"] = LAB_SECRET
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out.pop("HMACGUARD_SECRET", None)
    return out


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hmacguard", "leaks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        cwd=ROOT,
        check=False,
    )


def leaks_json(target: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``hmacguard leaks TARGET --format json`` signed with the lab secret; exit code and report."""
    proc = run_cli(target, "--scheme", "github", "--secret", LAB_SECRET, "--format", "json", *args)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, json.loads(proc.stdout)


def line_of(path: Path, needle: str) -> int:
    """The 1-based number of the only line of ``path`` containing ``needle``."""
    hits = [n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    if len(hits) != 1:
        raise LookupError(f"{needle!r} is on {len(hits)} lines of {path}")
    return hits[0]


def run_pytest(directory: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        cwd=directory,
        check=False,
    )
