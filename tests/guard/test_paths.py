"""The matching model's edges, unit by unit (the attack matrix is tests/guard/spellings/)."""

from __future__ import annotations

import pytest

from hmacguard import PathInvalid
from hmacguard.guard.paths import MAX_PATH, ProtectedPaths, spellings


def test_control_characters_refuse_only_a_path_that_could_reach_a_protected_one() -> None:
    protected = ProtectedPaths(["/webhook", "/hooks/*"])
    # Starlette routes "/webhook\n" to /webhook ($ matches before a trailing newline): refused.
    for path in ("/webhook\n", "/web\x00hook", "/hooks/\tx", "/%0Awebhook"):
        with pytest.raises(PathInvalid):
            protected.matches(path)
    # Elsewhere a control character is the application's business.
    assert protected.matches("/files/a\tb") is False
    assert protected.matches("/files/%09") is False


def test_uninterpretable_paths_are_refused_wherever_they_point() -> None:
    protected = ProtectedPaths(["/webhook"])
    with pytest.raises(PathInvalid):
        protected.matches("/%2525252Fwebhook")  # nested deeper than the decoder follows
    with pytest.raises(PathInvalid):
        protected.matches("/x" * (MAX_PATH // 2 + 1))


def test_spellings_leave_control_characters_out() -> None:
    assert "/webhook" in spellings("/webhook%0A")
