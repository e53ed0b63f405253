"""Shared by the real-code benches: exact trees from local checkouts, and audits of them.

The evaluated code bases are public repositories whose code this project does not commit. The
benches take a directory of local git checkouts (one per repository, named ``owner+name``, as
``git clone`` of each would be renamed) and export the exact commit a label refers to with
``git archive`` into a temporary folder, so a checkout on another branch still scores right.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FACTS = Path(__file__).parent / "facts"


def load(name: str) -> dict:
    return json.loads((FACTS / name).read_text(encoding="utf-8"))


def checkout_of(root: Path, repo: str) -> Path | None:
    """The local checkout of ``owner/name`` under ``root`` (``owner+name`` or ``name``)."""
    for candidate in (root / repo.replace("/", "+"), root / repo.split("/")[-1]):
        if (candidate / ".git").exists() or (candidate / "HEAD").exists():
            return candidate
    return None


@contextmanager
def tree_at(checkout: Path, commit: str, scope: str = "") -> Iterator[Path | None]:
    """The files of ``checkout`` at ``commit`` (only ``scope`` when given), in a temporary folder."""
    command = ["git", "-C", str(checkout), "archive", "--format=tar", commit]
    if scope:
        command += ["--", scope]
    proc = subprocess.run(command, capture_output=True, check=False)
    if proc.returncode != 0:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="hmacguard-realcode-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
            archive.extractall(tmp, filter="data")
        yield Path(tmp)


def language_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts", ".es6"):
        return "javascript"
    return "python"  # .py, requirements, settings: the Python side of the project


def checkouts_args(script: str, description: str) -> argparse.Namespace | None:
    """The command line both real-code benches take (a directory of local checkouts, ``-v``); None,
    after saying so, when the directory is not given or does not exist (the bench is then skipped)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("checkouts", type=Path, nargs="?", default=None)
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args()
    if args.checkouts is None or not args.checkouts.is_dir():
        print(f"{script}: give the directory of local checkouts (owner+name folders); skipped")
        return None
    return args
