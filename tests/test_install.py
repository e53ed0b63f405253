"""``pip install hmacguard`` is the guard alone, offline: no dependency, ``import hmacguard`` stdlib-only,
the console entry point a one-line hint, and the pytest plugin harmless (and working) beside it.

The wheel is built from this checkout with ``--no-build-isolation`` and installed with ``--no-index``
into a fresh venv: a declared dependency would make that install fail, since nothing can be fetched.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests._install import run, wheel_in_fresh_venv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the hmacguard wheel installed; returns its bin directory."""
    bin_dir, _ = wheel_in_fresh_venv(tmp_path_factory.mktemp("bare"))
    return bin_dir


def test_pip_list_is_hmacguard_alone(bare: Path) -> None:
    listed = run(bare / "python", "-m", "pip", "list", "--format", "json")
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "hmacguard" in names
    assert names - {"hmacguard"} <= {"pip", "setuptools", "wheel"}, names


def test_the_guard_imports_with_the_standard_library_only(bare: Path) -> None:
    code = (
        "import sys; from hmacguard import Verifier, WSGIGuard, ASGIGuard; import hmacguard.integrations;"
        "print('\\n'.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] not in sys.stdlib_module_names and m.split('.')[0] != 'hmacguard')))"
    )
    out = run(bare / "python", "-I", "-c", code)
    assert out.returncode == 0, out.stderr
    assert [m for m in out.stdout.split() if m not in ("__main__", "_distutils_hack")] == []


def test_the_program_without_the_cli_extra_is_a_one_line_hint(bare: Path) -> None:
    for argv in ([bare / "hmacguard", "--help"], [bare / "python", "-m", "hmacguard", "scan"]):
        out = run(*argv)
        assert out.returncode == 2
        assert out.stdout == ""
        assert out.stderr.strip().splitlines() == [out.stderr.strip()]  # one line
        assert "pip install 'hmacguard[cli]'" in out.stderr and "Traceback" not in out.stderr


def _with_dependencies(name: str, seen: set[str]) -> set[str]:
    """``name`` and what it requires on this interpreter, recursively (extras left out)."""
    if name in seen:
        return seen
    seen.add(name)
    for text in importlib.metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            _with_dependencies(requirement.name, seen)
    return seen


def _top_level(dist: str) -> set[str]:
    files = importlib.metadata.files(dist) or []
    return {f.parts[0].removesuffix(".py") for f in files if f.suffix == ".py" and ".." not in f.parts}


def test_pytest_with_the_plugin_works_beside_the_bare_install(bare: Path, tmp_path: Path) -> None:
    # pytest and its own dependencies only (linked from this environment), nothing of the cli extra.
    site = tmp_path / "site"
    site.mkdir()
    here = Path(importlib.metadata.distribution("pytest").locate_file(""))
    for dist in _with_dependencies("pytest", set()):
        for top in _top_level(dist):
            source = here / top if (here / top).exists() else here / f"{top}.py"
            (site / source.name).symlink_to(source)
    (tmp_path / "test_app.py").write_text(
        "import pytest\n\n"
        "def app(environ, start_response):\n"
        "    environ['wsgi.input'].read()\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n\n"
        "@pytest.mark.leak_budget('1 KiB', requests=40)\n"
        "def test_keeps_nothing(leak_check):\n"
        "    leak_check(app, path='/hook', body_size=1024)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = run(
        bare / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path / "test_app.py", env=env
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
    imported = run(bare / "python", "-c", "import typer", env=env)
    assert imported.returncode != 0  # the cli extra really is absent
