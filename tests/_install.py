"""A wheel of this checkout built offline and installed into a fresh venv (tests/test_install*.py)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )


def wheel_in_fresh_venv(
    tmp: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> tuple[Path, Path]:
    """Build this checkout's wheel (``--no-build-isolation --no-index``: nothing fetched; ``env``
    for the build) and install it offline into a fresh venv under ``tmp``: (its bin directory, the
    wheel)."""
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                "--quiet", "-w", tmp / "dist", ROOT, env=env, timeout=timeout)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("hmacguard-*.whl")
    venv.EnvBuilder(with_pip=True).create(tmp / "venv")
    bin_dir = tmp / "venv" / "bin"
    installed = run(bin_dir / "python", "-m", "pip", "install", "--no-index", "--quiet", wheel)
    assert installed.returncode == 0, installed.stderr
    return bin_dir, wheel
