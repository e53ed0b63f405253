"""``make bench``: run every bench/bench_*.py in turn; each prints its own side-by-side ratio."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    scripts = sorted(here.glob("bench_*.py"))
    only = sys.argv[1:]
    failed = []
    for script in scripts:
        if only and not any(o in script.name for o in only):
            continue
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(script)])
        print(f"--- {script.name}: exit {code}, {time.monotonic() - t0:.1f}s", flush=True)
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
