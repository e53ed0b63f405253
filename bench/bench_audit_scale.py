"""Claim: the audit's cost is bounded per file: a tree audits in well under 200 MB of peak RSS, and
a 3 MB minified bundle is skipped by default and bounded when included on purpose.

Each measurement runs ``hmacguard audit`` as a real process and reads its peak RSS from the
operating system (``ru_maxrss`` of the finished child) and its wall time:

- a tree: the largest one given (``--tree PATH``, repeatable), e.g. a checkout of a monorepo;
- a 3 MB minified bundle written by this script (a few very long lines of webhook-like modules
  that call createHmac, compare digests with ``!==`` and accumulate ``'data'`` chunks: the shapes
  that made vendored bundles expensive), audited as part of a folder (skipped: minified) and
  named explicitly (audited on purpose).

Run: ``python bench/bench_audit_scale.py [--tree PATH ...]`` (exit 1 when a tree or the skipped
bundle goes over 200 MB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

GOAL_MB = 200
BUNDLE_BYTES = 3 * 1024 * 1024


def write_bundle(folder: Path) -> Path:
    modules = []
    size = i = 0
    while size < BUNDLE_BYTES:
        i += 1
        module = (
            f'function m{i}(e,t,n){{"use strict";var r=n({i}),o=r.createHmac("sha256",t.k);'
            'e.on("data",function(u){t.b+=u;o.update(u)});var s=o.digest("hex");'
            "if(s!==t.sig)return void 0;var a=[];for(var c=0;c<e.length;c++)a.push(e[c]);"
            "return u.ref!==void 0&&a.length===s.length?a:null}"
        )
        modules.append(module)
        size += len(module)
    path = folder / "vendor.bundle.js"
    per_line = len(modules) // 4 + 1
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, len(modules), per_line):
            fh.write(";".join(modules[start : start + per_line]) + "\n")
    return path


def measure(target: Path, *extra: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one ``hmacguard audit`` process."""
    command = [
        sys.executable,
        "-m",
        "hmacguard",
        "audit",
        str(target),
        "-f",
        "json",
        "-o",
        os.devnull,
        *extra,
    ]
    # Peak RSS of this child alone: measure in a fresh interpreter whose only child is the audit.
    probe = (
        "import resource,subprocess,sys,time;t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:]);"
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True)
    seconds, kilobytes, code = out.stdout.split()
    return float(seconds), int(kilobytes) / 1024, int(code)


def _files(tree: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(tree))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, action="append", default=[])
    args = parser.parse_args()
    verdict = 0
    print(f"{'what':<58} {'seconds':>8} {'peak MB':>8} {'exit':>5}")
    for tree in args.tree:
        if not tree.is_dir():
            print(f"skip {tree}: not a folder")
            continue
        seconds, mb, code = measure(tree)
        print(f"{f'tree {tree.name} ({_files(tree)} files)':<58} {seconds:>8.2f} {mb:>8.1f} {code:>5}")
        verdict |= mb > GOAL_MB
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(Path(tmp))
        size = bundle.stat().st_size / 1024 / 1024
        seconds, mb, code = measure(Path(tmp))
        what = f"folder with a {size:.1f} MB bundle (skipped by default)"
        print(f"{what:<58} {seconds:>8.2f} {mb:>8.1f} {code:>5}")
        verdict |= mb > GOAL_MB
        seconds, mb, code = measure(bundle)
        what = f"the {size:.1f} MB bundle named explicitly (audited)"
        print(f"{what:<58} {seconds:>8.2f} {mb:>8.1f} {code:>5}")
    print(f"goal: a tree under {GOAL_MB} MB peak RSS; an included bundle is bounded by the 4 MiB file cap")
    return int(verdict)


if __name__ == "__main__":
    sys.exit(main())
