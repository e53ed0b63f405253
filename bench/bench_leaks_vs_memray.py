"""Side by side: hmacguard's ``leak_budget`` and pytest-memray's ``limit_leaks`` on the same cases.

Every case is one pytest test, generated three ways and each run in its own interpreter (the Django lab
apps configure settings at import, so one project per process):

- hmacguard: ``@pytest.mark.leak_budget("1 KiB", requests=N)`` with the ``leak_check`` fixture;
- memray: ``@pytest.mark.limit_leaks(N x 1 KiB)`` around the same N requests in a loop, as its
  documentation recommends, run with ``pytest --memray`` (the limit is per call stack over the whole
  test, so the per-request budget is multiplied by N to ask the same question);
- plain: the memray file without ``--memray`` (its markers then do nothing): the requests alone.

Both tools see the same requests: the harness's in-process driver, signed GitHub-style deliveries of
64 KiB, ten warm-up requests first. Ground truth per case: "leak" (keeps every body), "bounded" (an
LRU of 128 bodies: grows, then holds -- not a leak), "clean" (keeps nothing).

Printed: one row per case (verdict, seconds of the test call, whether the failure names the line that
*stores* the body), then caught / missed / false alarms and total time per tool, and the slowdown of
each tool over the plain loop. Everything runs on loopback-free in-process calls; nothing leaves the
machine. Run: ``python bench/bench_leaks_vs_memray.py [--requests 200] [--only NAME]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "src" / "hmacguard" / "lab" / "apps"
TEST_APPS = ROOT / "tests" / "leaks" / "apps.py"
BODY = 64 * 1024
WARMUP = 10
BUDGET = 1024


@dataclass(frozen=True)
class Case:
    name: str
    target: str
    truth: str  # "leak", "bounded" or "clean"
    #: file and needle of the line that stores the body (leaks only)
    store: tuple[Path, str] | None = None


CASES = (
    Case("django-body-cache", "hmacguard.lab.apps.django_body_cache:application", "leak",
         (APPS / "django_body_cache.py", "SIGNATURE_CACHE[request_id] =")),
    Case("django-middleware-attach", "hmacguard.lab.apps.django_middleware_attach:application", "leak",
         (APPS / "django_middleware_attach.py", "DEBUG_LOG.append(")),
    Case("flask list of bodies", "tests.leaks.apps:flask_leak", "leak", (TEST_APPS, "# FLASK-LEAK")),
    Case("fastapi list of bodies", "tests.leaks.apps:fastapi_leak", "leak", (TEST_APPS, "# ASGI-LEAK")),
    Case("flask OrderedDict LRU(128)", "tests.leaks.apps:flask_lru", "bounded"),
    Case("flask functools.lru_cache(128)", "tests.leaks.apps:flask_functools", "bounded"),
    Case("django-stateless", "hmacguard.lab.apps.django_stateless:application", "clean"),
    Case("flask-streaming-capped", "hmacguard.lab.apps.flask_streaming_capped:app", "clean"),
    Case("flask-get-data", "hmacguard.lab.apps.flask_get_data:app", "clean"),
    Case("fastapi-body", "hmacguard.lab.apps.fastapi_body:app", "clean"),
    Case("flask-guarded", "hmacguard.lab.apps.flask_guarded:app", "clean"),
    Case("django-guarded", "hmacguard.lab.apps.django_guarded:application", "clean"),
    Case("fastapi-guarded", "hmacguard.lab.apps.fastapi_guarded:app", "clean"),
)  # fmt: skip

HMACGUARD_TEST = """
import pytest
from hmacguard.lab import LAB_SECRET
from hmacguard.leaks import load_target

APP = load_target({target!r})


@pytest.mark.leak_budget({budget}, requests={requests}, warmup={warmup})
def test_case(leak_check):
    leak_check(APP, body_size={body}, scheme="github", secret=LAB_SECRET)
"""

MEMRAY_TEST = """
import pytest
from hmacguard.lab import LAB_SECRET
from hmacguard.leaks import AppWorkload, Recipe, load_target

WORK = AppWorkload(load_target({target!r}), Recipe(body_size={body}, scheme="github", secret=LAB_SECRET))
WORK.run({warmup})


@pytest.mark.limit_leaks("{limit} B")
def test_case():
    WORK.run({requests})
    assert WORK.statuses.get(200) == {warmup} + {requests}, WORK.statuses
"""

_DURATION = re.compile(r"^\s*([\d.]+)s call\s+\S*test_case", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    failed: bool
    seconds: float
    names_store: bool
    output: str


def _store_line(case: Case) -> str | None:
    if case.store is None:
        return None
    path, needle = case.store
    number = next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)
    return f"{path.name}:{number}"


def run(case: Case, tool: str, requests: int, workdir: Path) -> Outcome:
    directory = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=workdir))
    template = HMACGUARD_TEST if tool == "hmacguard" else MEMRAY_TEST
    source = template.format(
        target=case.target,
        budget=BUDGET,
        requests=requests,
        warmup=WARMUP,
        body=BODY,
        limit=BUDGET * requests,
    )
    (directory / "test_case.py").write_text(source)
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--durations=0",
        "--durations-min=0",
    ]
    if tool == "memray":
        args.append("--memray")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HMACGUARD_LAB_SECRET="hmacguard-lab-secret")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*args, "test_case.py"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{case.name} / {tool}: pytest exit {proc.returncode}\n{out[-3000:]}")
    m = _DURATION.search(out)
    seconds = float(m.group(1)) if m else wall
    store = _store_line(case)
    return Outcome(proc.returncode == 1, seconds, bool(store and store in out), out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--show", action="store_true", help="print each tool's failure output")
    args = parser.parse_args()
    cases = [c for c in CASES if args.only in c.name]
    tools = ("hmacguard", "memray", "plain")
    totals = {t: {"caught": 0, "missed": 0, "false": 0, "seconds": 0.0, "named": 0} for t in tools}
    print(f"{args.requests} signed 64 KiB requests per case after {WARMUP} warm-up; budget 1 KiB/request")
    header = f"{'case':32} {'truth':8} | {'hmacguard':>22} | {'memray limit_leaks':>22} | {'plain':>7}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="leaks-vs-memray-") as tmp:
        for case in cases:
            row = {}
            for tool in tools:
                # "plain" is the memray file without --memray: the markers are inert, the loop is the cost.
                outcome = run(case, tool, args.requests, Path(tmp))
                row[tool] = outcome
                if tool == "plain":
                    totals[tool]["seconds"] += outcome.seconds
                    continue
                t = totals[tool]
                t["seconds"] += outcome.seconds
                if case.truth == "leak":
                    t["caught" if outcome.failed else "missed"] += 1
                    t["named"] += outcome.names_store
                elif outcome.failed:
                    t["false"] += 1
                if args.show and outcome.failed:
                    print(f"--- {case.name} / {tool} ---\n{outcome.output[-2500:]}")

            def cell(o: Outcome) -> str:
                verdict = "FAIL" if o.failed else "pass"
                named = " +line" if o.names_store else ""
                return f"{verdict}{named} {o.seconds:6.1f}s"

            print(
                f"{case.name:32} {case.truth:8} | {cell(row['hmacguard']):>22} | {cell(row['memray']):>22} "
                f"| {row['plain'].seconds:6.1f}s",
                flush=True,
            )
    leaks = sum(1 for c in cases if c.truth == "leak")
    print()
    columns = ("caught", 7), ("missed", 7), ("false alarms", 13), ("store line named", 17), ("time", 8)
    print(f"{'tool':20} " + " ".join(f"{name:>{width}}" for name, width in columns) + f" {'vs plain':>9}")
    plain_seconds = totals["plain"]["seconds"] or 1e-9
    for tool in ("hmacguard", "memray"):
        t = totals[tool]
        print(
            f"{tool:20} {t['caught']:>4}/{leaks:<2} {t['missed']:>7} {t['false']:>13} "
            f"{t['named']:>14}/{leaks:<2} {t['seconds']:7.1f}s {t['seconds'] / plain_seconds:8.1f}x"
        )
    print(f"{'plain loop':20} {'':>7} {'':>7} {'':>13} {'':>17} {plain_seconds:7.1f}s {1.0:8.1f}x")
    print("'+line': the failure message names the line that stores the body (not only where it was read).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
