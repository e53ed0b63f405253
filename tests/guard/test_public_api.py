"""The curated public API: ``__all__`` is exact, and ``import hmacguard`` needs only the stdlib."""

from __future__ import annotations

import subprocess
import sys

import hmacguard


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(hmacguard) if not name.startswith("_")}
    # Submodules become attributes of the package when imported; they are not API names.
    modules = {name for name in public if type(getattr(hmacguard, name)).__name__ == "module"}
    assert sorted(hmacguard.__all__) == sorted(set(hmacguard.__all__))
    assert set(hmacguard.__all__) - {"__version__"} == public - modules - {"annotations"}


def test_every_name_in_all_resolves() -> None:
    for name in hmacguard.__all__:
        assert getattr(hmacguard, name) is not None


def test_import_hmacguard_imports_no_third_party_module() -> None:
    code = (
        "import sys, hmacguard, hmacguard.integrations;"
        "print('\\n'.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] not in sys.stdlib_module_names and m.split('.')[0] != 'hmacguard')))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    # "-I" keeps site-packages' .pth helpers (e.g. setuptools' _distutils_hack) out of the way;
    # hmacguard__mypyc is ours: the compiled guard's runtime library (hatch_build.py).
    assert [m for m in out if m not in ("__main__", "_distutils_hack", "hmacguard__mypyc")] == []


def test_guard_errors_carry_their_statuses() -> None:
    expected = {
        hmacguard.SignatureMissing: 400,
        hmacguard.SignatureMalformed: 400,
        hmacguard.TimestampInvalid: 400,
        hmacguard.SignatureMismatch: 401,
        hmacguard.BodyTimeout: 408,
        hmacguard.ReplayDetected: 409,
        hmacguard.BodyTooLarge: 413,
        hmacguard.UnsupportedEncoding: 415,
        hmacguard.RateLimited: 429,
        hmacguard.StoreUnavailable: 503,
    }
    for cls, status in expected.items():
        assert cls.status == status
        assert issubclass(cls, hmacguard.RequestRejected)
