"""Claim: the scanner's peak RSS while sending one 1 GiB probe stays at or under 64 MiB, because the
body is generated on the fly; a naive client that builds the body in memory needs more than the body.

Side by side in one run, each sender in a fresh child process (so its peak RSS, ``ru_maxrss``, is
its own): the scanner sends one *signed* 1 GiB octet-stream probe through its real path
(``Prober.send``: a first streaming pass to sign, a second to send, the socket read concurrently);
the naive client builds the same-size body as bytes, signs it and sends it with http.client. The
receiver is the lab's ``express-json-limit`` target, which streams octet-stream bodies through its
HMAC without keeping them (its own memory stays flat), so both senders are measured against the
same real server.

Bounded: loopback only, two bodies of ``--size`` bytes. Run: ``python bench/bench_scan_rss.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from hmacguard.lab import run_target

MiB = 1024 * 1024
LIMIT = 64 * MiB

SCANNER = """
import json, resource, sys
from hmacguard.scan import Budget, ScanTarget, Variant
from hmacguard.scan.probes.base import Prober
from hmacguard.scan.runner import endpoint_for
url, secret, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
target = ScanTarget(url, secret=secret)
budget = Budget(bytes=size + 1024 * 1024, max_size=size, ladder=(size,), request_timeout=30, seconds=300)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
prober = Prober(target, budget, endpoint_for(target), target.parsed().path)
m = prober.send(Variant(content_type="application/octet-stream"), size)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"status": m.exchange.status, "sent": m.exchange.body_sent, "seconds": m.exchange.total_s,
                  "rss_before_probe": before, "peak_rss": peak}))
"""

NAIVE = """
import http.client, json, resource, sys, time
from urllib.parse import urlsplit
from hmacguard.schemes import sign_body
url, secret, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
parts = urlsplit(url)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
body = b"a" * size
headers = sign_body("github", secret, body)
headers["Content-Type"] = "application/octet-stream"
t0 = time.monotonic()
conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
conn.request("POST", parts.path, body=body, headers=headers)
status = conn.getresponse().status
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"status": status, "sent": len(body), "seconds": time.monotonic() - t0,
                  "rss_before_probe": before, "peak_rss": peak}))
"""


def run_child(code: str, url: str, secret: str, size: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, url, secret, str(size)], capture_output=True,
                         text=True, timeout=600, check=True)  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024 * MiB, help="probe body bytes (default 1 GiB)")
    args = parser.parse_args()
    with run_target("express-json-limit") as t:
        scanner = run_child(SCANNER, t.url, t.secret, args.size)
        naive = run_child(NAIVE, t.url, t.secret, args.size)
    print(f"one {args.size / MiB:.0f} MiB signed probe to express-json-limit (octet-stream, streamed)")
    print(f"{'sender':<34}{'status':>7}{'seconds':>9}{'peak RSS':>12}{'RSS / body':>12}")
    for name, r in (("hmacguard scan (generated body)", scanner), ("naive (body built in memory)", naive)):
        print(f"{name:<34}{r['status']:>7}{r['seconds']:>9.2f}{r['peak_rss'] / MiB:>9.1f} MiB"
              f"{r['peak_rss'] / args.size:>12.3f}")  # fmt: skip
    print(f"naive / scanner peak RSS: {naive['peak_rss'] / scanner['peak_rss']:.1f}x")
    ok = scanner["peak_rss"] <= LIMIT and scanner["sent"] == args.size
    print(f"claim: scanner peak RSS <= {LIMIT / MiB:.0f} MiB while sending the whole probe: "
          f"{'PASS' if ok else 'FAIL'} ({scanner['peak_rss'] / MiB:.1f} MiB, "
          f"{scanner['sent'] / MiB:.0f} MiB sent)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
