"""The guard's hot path compiled to C extensions by mypyc: one list of modules, two ways to build.

Why: a guarded tiny delivery's cost is interpreted bytecode -- about 23 Python calls and 40 C calls
(issue 14: profiled, no system call or allocation left to remove). mypyc compiles these modules,
which are already typed for ``mypy --strict``, into C extensions: the same code, run without the
interpreter loop (``bench/bench_guard_rps.py`` measures both builds). Each ``.py`` stays the source
of truth and the fallback: where no compiled extension is present, Python imports the ``.py``.

- ``python hatch_build.py`` (``make compiled``): builds the extensions in place, next to the sources
  in ``src/`` (the editable install imports them from there); ``python hatch_build.py --clean``
  removes them (the pure-Python build).
- The wheel: the build hook below, when enabled (``HATCH_BUILD_HOOK_ENABLE_CUSTOM=true``, as
  ``make wheel`` does). It is off by default so that building from the sdist needs no C compiler;
  a wheel built without it is the pure-Python guard, which behaves the same.

The modules: the lane (:mod:`hmacguard.guard.lane`), the WSGI driver, the verifier, the replay
store, the GitHub scheme's parser and the outcome and decision types they pass around. Anything a
user or a test subclasses is marked ``allow_interpreted_subclasses`` in its module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"

#: The compiled modules, as paths under src/.
COMPILED = (
    "hmacguard/guard/lane.py",
    "hmacguard/guard/verifier.py",
    "hmacguard/guard/replay.py",
    "hmacguard/guard/outcomes.py",
    "hmacguard/guard/decision.py",
    "hmacguard/schemes/github.py",
    "hmacguard/integrations/wsgi.py",
)
#: The name of mypyc's shared runtime library (a top-level extension module, ``hmacguard__mypyc``).
GROUP = "hmacguard"


def extensions(root: Path) -> list[Path]:
    """The compiled extensions under ``root`` (one per module, and the shared runtime library)."""
    found = [root / f"{GROUP}__mypyc{suffix}" for suffix in _suffixes()]
    for module in COMPILED:
        stem = (root / module).with_suffix("")
        found += [stem.with_name(stem.name + suffix) for suffix in _suffixes()]
    return [path for path in found if path.exists()]


def _suffixes() -> list[str]:
    import importlib.machinery

    return list(importlib.machinery.EXTENSION_SUFFIXES)


def compile_into(out: Path) -> list[Path]:
    """Compile :data:`COMPILED` (read from ``src/``) and copy the extensions into ``out``, laid out
    as under ``src/``; the paths copied. Runs mypyc in a scratch directory: its C sources and
    objects never land in the tree."""
    with tempfile.TemporaryDirectory(prefix="hmacguard-mypyc-") as scratch:
        work = Path(scratch)
        shutil.copytree(
            SRC / "hmacguard",
            work / "hmacguard",
            ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "node_modules"),
        )
        script = (
            "from setuptools import setup\n"
            "from mypyc.build import mypycify\n"
            f"setup(name='hmacguard-compiled', ext_modules=mypycify({list(COMPILED)!r}, "
            f"group_name={GROUP!r}, opt_level='3'), script_args=['build_ext', '--inplace'])\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=work, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SystemExit(f"mypyc failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        built = extensions(work)
        copied = []
        for path in built:
            target = out / path.relative_to(work)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied.append(target)
        return copied


def clean(root: Path = SRC) -> None:
    for path in extensions(root):
        path.unlink()


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script without hatchling: only the in-place build is needed
    BuildHookInterface = object


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """Adds the compiled extensions to a (non-editable) wheel and tags it for this platform."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # the editable install imports what `make compiled` built in src/
        missing = missing_toolchain()
        if missing is not None:
            raise SystemExit(f"cannot build the compiled wheel: {missing}")
        out = Path(self.directory) / "mypyc-extensions"
        if out.exists():
            shutil.rmtree(out)
        for path in compile_into(out):
            build_data["force_include"][str(path)] = str(path.relative_to(out))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True


def missing_toolchain() -> str | None:
    """What compiling needs and this machine lacks (a C compiler, Python's headers), or ``None``."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.exists():
        return f"no Python headers ({headers}; Debian: apt-get install python3-dev)"
    return None


def main(argv: list[str]) -> int:
    clean()
    if argv[1:] == ["--clean"]:
        print("removed the compiled extensions: the guard runs as pure Python")
        return 0
    if os.environ.get("HMACGUARD_PURE"):
        print("HMACGUARD_PURE is set: the guard runs as pure Python")
        return 0
    missing = missing_toolchain()
    if missing is not None:
        print(f"not compiling the guard: {missing}; it runs as pure Python, which behaves the same")
        return 0
    copied = compile_into(SRC)
    print(f"compiled {len(COMPILED)} modules with mypyc ({len(copied)} extensions in src/)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
