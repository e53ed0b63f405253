"""The compiled wheel (``make wheel``: hatch_build.py's build hook) installs and guards on its own.

Built from this checkout with the hook enabled, installed offline into a fresh venv, it must be a
platform wheel whose guard runs compiled without mypy or mypy_extensions, import nothing outside
the standard library but its own runtime library, and answer a guarded WSGI flow exactly as the
pure-Python guard of this checkout answers it (tests/_guard_flow.py, run by both).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hatch_build import missing_toolchain

from tests._install import run as run_in_checkout
from tests._install import wheel_in_fresh_venv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
FLOW = Path(__file__).with_name("_guard_flow.py")


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_in_checkout(*args, env=env, timeout=600)  # compiling takes about 40 s of it


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv with only the compiled hmacguard wheel installed: (its python, the wheel)."""
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"cannot compile the guard here: {missing}")
    env = {**os.environ, "HATCH_BUILD_HOOK_ENABLE_CUSTOM": "true"}
    bin_dir, wheel = wheel_in_fresh_venv(tmp_path_factory.mktemp("compiled"), env=env, timeout=600)
    return bin_dir / "python", wheel


def test_the_wheel_is_tagged_for_this_platform(compiled: tuple[Path, Path]) -> None:
    _, wheel = compiled
    assert not wheel.name.endswith("-none-any.whl"), wheel.name
    assert f"cp{sys.version_info.major}{sys.version_info.minor}" in wheel.name


def test_the_compiled_guard_imports_the_standard_library_and_its_runtime_only(
    compiled: tuple[Path, Path],
) -> None:
    python, _ = compiled
    code = (
        "import sys, importlib.util; import hmacguard, hmacguard.integrations, hmacguard.guard.lane as lane;"
        "print(lane.__file__.endswith('.py'), importlib.util.find_spec('mypy_extensions') is None);"
        "print(' '.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] not in sys.stdlib_module_names and m.split('.')[0] != 'hmacguard')))"
    )
    out = run(python, "-I", "-c", code)
    assert out.returncode == 0, out.stderr
    flags, modules = [*out.stdout.splitlines(), ""][:2]
    assert flags == "False True"  # compiled, and mypy_extensions is not even installed
    assert set(modules.split()) - {"__main__", "_distutils_hack"} == {"hmacguard__mypyc"}


def test_the_compiled_guard_answers_as_the_pure_one(compiled: tuple[Path, Path], tmp_path: Path) -> None:
    python, _ = compiled
    installed = run(python, "-I", FLOW)
    assert installed.returncode == 0, installed.stderr
    # This checkout's guard without its compiled extensions (if built in place): the pure-Python build.
    shutil.copytree(
        ROOT / "src" / "hmacguard",
        tmp_path / "hmacguard",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "node_modules", "__pycache__"),
    )
    pure_env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    pure = run(sys.executable, FLOW, env=pure_env)
    assert pure.returncode == 0, pure.stderr
    answers, expected = json.loads(installed.stdout), json.loads(pure.stdout)
    assert (answers.pop("build"), expected.pop("build")) == ("compiled", "pure")
    assert answers == expected
    assert expected == {
        "fresh": 200, "replay": 409, "forged": 401, "unsigned": 400, "too_large": 413,
        "bytearray_read": 200, "short_body": 400,
    }  # fmt: skip
