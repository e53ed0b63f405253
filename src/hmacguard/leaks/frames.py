"""Whose code is a frame? Application, library, interpreter, or hmacguard itself.

A retained allocation is worth reporting only at a line the user can change: the innermost frame of its
traceback that belongs to the application. Everything else is classified so it can be set aside:

- the standard library and ``<frozen ...>`` modules (the interpreter's own code),
- installed third-party packages (site-packages, dist-packages),
- hmacguard itself (this harness, the signer) -- except the lab's apps, which are applications,
- and a short list of standard-library modules whose *caches* grow on first use (``re``, ``typing``,
  ``logging``, the import machinery, ``linecache``...): a trace whose innermost frame lies in one of them
  is interpreter bookkeeping, bounded by design, and never a finding of its own.
"""

from __future__ import annotations

import os
import site
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

__all__ = ["FrameKind", "FramePolicy", "Site"]

_HMACGUARD = Path(__file__).resolve().parents[1]
_LAB_APPS = _HMACGUARD / "lab" / "apps"
_LEAKS = _HMACGUARD / "leaks"
#: The one harness module the application calls into (wsgi.input, receive): not a driver frame.
_WIRE = _LEAKS / "wire.py"

#: Standard-library modules that cache on first use (relative to the stdlib directory).
_CACHING_STDLIB = (
    "re/",
    "sre_compile.py",
    "sre_parse.py",
    "typing.py",
    "functools.py",
    "abc.py",
    "_weakrefset.py",
    "weakref.py",
    "logging/",
    "linecache.py",
    "tracemalloc.py",
    "importlib/",
    "encodings/",
    "codecs.py",
    "warnings.py",
    "inspect.py",
    "enum.py",
    "copyreg.py",
    "_strptime.py",
    "locale.py",
    "mimetypes.py",
    "email/",
    "http/cookies.py",
    "ipaddress.py",
    "zoneinfo/",
    "asyncio/",
    "threading.py",
    "concurrent/",
    "selectors.py",
)


class FrameKind(str, Enum):
    APPLICATION = "application"
    LIBRARY = "library"
    STDLIB = "stdlib"
    CACHE = "interpreter-cache"
    HMACGUARD = "hmacguard"
    #: This package's driver: frames outside it belong to whoever called the harness, not the app.
    HARNESS = "harness"
    #: The harness module the app calls into (wsgi.input, receive): neither app nor library.
    WIRE = "wire"


@dataclass(frozen=True, order=True)
class Site:
    """A source line: where memory was allocated or stored."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def _norm(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.realpath(path)).rstrip(os.sep) + os.sep


def _library_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    dirs.update(site.getsitepackages())
    user = site.getusersitepackages()
    if user:
        dirs.add(user)
    return tuple(sorted({_norm(d) for d in dirs if d}))


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths["stdlib"], paths["platstdlib"], os.path.dirname(os.__file__)}
    return tuple(sorted({_norm(d) for d in dirs if d}))


class FramePolicy:
    """Classifies tracemalloc frames; ``include``/``exclude`` directories override the defaults.

    ``include`` marks directories as application code even inside site-packages (an editable vendored
    package, say); ``exclude`` marks directories as library code even when they are not installed.
    """

    def __init__(
        self,
        *,
        include: Iterable[str | os.PathLike[str]] = (),
        exclude: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self._include = tuple(_norm(p) for p in include)
        self._exclude = tuple(_norm(p) for p in exclude)
        self._libraries = _library_dirs()
        self._stdlib = _stdlib_dirs()
        self._caching = tuple(
            root + rel.replace("/", os.sep) for root in self._stdlib for rel in _CACHING_STDLIB
        )
        self._hmacguard = _norm(_HMACGUARD)
        self._lab_apps = _norm(_LAB_APPS)
        self._harness = _norm(_LEAKS)
        self._wire = _norm(_WIRE)[:-1]
        self.kind = lru_cache(maxsize=4096)(self._kind)

    def _kind(self, filename: str) -> FrameKind:
        if filename.startswith("<"):
            # "<frozen importlib._bootstrap>", "<string>" and friends: no file the user can edit.
            return FrameKind.CACHE if "importlib" in filename else FrameKind.STDLIB
        path = _norm(filename)[:-1]
        if self._include and path.startswith(self._include):
            return FrameKind.APPLICATION
        if self._exclude and path.startswith(self._exclude):
            return FrameKind.LIBRARY
        if path.startswith(self._lab_apps):
            return FrameKind.APPLICATION
        if path == self._wire:
            return FrameKind.WIRE
        if path.startswith(self._harness):
            return FrameKind.HARNESS
        if path.startswith(self._hmacguard):
            return FrameKind.HMACGUARD
        # site-packages lives inside the venv's "platstdlib": test for libraries first.
        if path.startswith(self._libraries):
            return FrameKind.LIBRARY
        if path.startswith(self._caching):
            return FrameKind.CACHE
        if path.startswith(self._stdlib):
            return FrameKind.STDLIB
        return FrameKind.APPLICATION

    def application_site(self, frames: Sequence[tuple[str, int]]) -> Site | None:
        """The innermost application frame of ``frames`` (given innermost first), if any.

        The search stops at the harness: frames beyond it are the caller of :func:`measure` (a test, a
        script), which is not the application under measurement.
        """
        for filename, lineno in frames:
            kind = self.kind(filename)
            if kind is FrameKind.APPLICATION:
                return Site(filename, lineno)
            if kind is FrameKind.HARNESS:
                return None
        return None

    def innermost_kind(self, frames: Sequence[tuple[str, int]]) -> FrameKind:
        return self.kind(frames[0][0]) if frames else FrameKind.STDLIB

    def outside_site(self, frames: Sequence[tuple[str, int]]) -> Site | None:
        """For growth with no application frame: the innermost library line that made it.

        hmacguard's own guard counts as a library here (to the user it is one). Allocations the driver
        made for itself -- signing the next request, its counters -- have no library frame between
        them and the harness, and are nobody's retention: None.
        """
        for filename, lineno in frames:
            kind = self.kind(filename)
            if kind is FrameKind.HARNESS:
                return None
            if kind in (FrameKind.LIBRARY, FrameKind.HMACGUARD):
                return Site(filename, lineno) if self._library_below(frames) else None
        return None

    def _library_below(self, frames: Sequence[tuple[str, int]]) -> bool:
        for filename, _ in frames:
            kind = self.kind(filename)
            if kind is FrameKind.HARNESS:
                return False
            if kind is FrameKind.LIBRARY:
                return True
        return False


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it, else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith(os.pardir) else rel
