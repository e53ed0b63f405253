"""The requirements front end: exact version pins from requirements and lock files.

Only *exact* pins say which version runs (``django==4.2.10`` in requirements.txt, a lock file's
``version = "4.2.10"``); ranges (``django>=4.2``, and ``django==3.2.*``, which PEP 440 reads as a
prefix match) do not, so they are not read. Supported:
``requirements*.txt``, ``constraints*.txt``, ``requirements/*.txt``, ``poetry.lock``, ``uv.lock``,
``pdm.lock``, ``Pipfile.lock`` and the dependency strings of ``pyproject.toml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from hmacguard.audit.model import SourceFile

__all__ = ["Pin", "RequirementsFile", "is_requirements_file", "parse_requirements", "version_tuple"]

_LOCKS = frozenset({"poetry.lock", "uv.lock", "pdm.lock"})
_REQ_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([0-9][^\s;,#\\]*)")
_QUOTED_PIN = re.compile(r"[\"']([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([0-9][^\"';,\s]*)")
_POETRY_DEP = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*=\s*\"={0,2}([0-9][0-9.]*)\"\s*$")
_TOML_NAME = re.compile(r'^name\s*=\s*"([^"]+)"')
_TOML_VERSION = re.compile(r'^version\s*=\s*"([^"]+)"')
_JSON_KEY = re.compile(r'^\s*"([^"]+)"\s*:\s*\{')
_JSON_VERSION = re.compile(r'^\s*"version"\s*:\s*"==([^"]+)"')


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    line: int


@dataclass(frozen=True)
class RequirementsFile:
    source: SourceFile
    pins: tuple[Pin, ...]

    def find(self, name: str) -> list[Pin]:
        return [p for p in self.pins if p.name == normalize(name)]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_tuple(version: str) -> tuple[int, ...]:
    """``"4.2.10"`` -> (4, 2, 10); pre-release suffixes are ignored."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def is_requirements_file(path: PurePath) -> bool:
    name = path.name.lower()
    if name in _LOCKS or name in ("pipfile.lock", "pyproject.toml"):
        return True
    return bool(
        name.endswith(".txt")
        and (name.startswith(("requirements", "constraints")) or path.parent.name == "requirements")
    )


def parse_requirements(source: SourceFile) -> RequirementsFile:
    name = PurePath(source.path).name.lower()
    pins: list[Pin] = []
    lines = source.lines
    if name in _LOCKS:
        pending: tuple[str, int] | None = None
        for number, line in enumerate(lines, 1):
            m = _TOML_NAME.match(line)
            if m:
                pending = (m.group(1), number)
                continue
            v = _TOML_VERSION.match(line)
            if v and pending is not None:
                pins.append(Pin(normalize(pending[0]), v.group(1), pending[1]))
                pending = None
            if line.startswith("["):
                pending = None if not line.startswith("[[package]]") else pending
    elif name == "pipfile.lock":
        key: tuple[str, int] | None = None
        for number, line in enumerate(lines, 1):
            m = _JSON_KEY.match(line)
            if m:
                key = (m.group(1), number)
                continue
            v = _JSON_VERSION.match(line)
            if v and key is not None:
                pins.append(Pin(normalize(key[0]), v.group(1), key[1]))
                key = None
    elif name == "pyproject.toml":
        section = ""
        for number, line in enumerate(lines, 1):
            if line.startswith("["):
                section = line.strip()
            for m in _QUOTED_PIN.finditer(line.split("#", 1)[0]):
                pins.append(Pin(normalize(m.group(1)), m.group(2), number))
            if "poetry" in section and "dependencies" in section:
                p = _POETRY_DEP.match(line)
                if p and p.group(1).lower() != "python":
                    pins.append(Pin(normalize(p.group(1)), p.group(2), number))
    else:
        for number, line in enumerate(lines, 1):
            m = _REQ_LINE.match(line)
            if m:
                pins.append(Pin(normalize(m.group(1)), m.group(2), number))
    # "==3.2.*" is a range (PEP 440 prefix matching), not a pin: it says nothing exact.
    return RequirementsFile(source, tuple(p for p in pins if "*" not in p.version))
