"""``hmacguard store check``: the Redis check as text (plain lines, for a terminal or a log)."""

from __future__ import annotations

import textwrap

from hmacguard.guard.preflight import SLOTS, StoreCheck

__all__ = ["store_check_text"]


def store_check_text(check: StoreCheck) -> str:
    """The check, one fact per line: connection, topology, exercise, then each warning."""
    lines = [
        f"Redis {check.url}",
        f"  deployment: {check.deployment}" + (f" (service {check.service})" if check.service else ""),
        f"  server:     {check.server_version}",
        f"  tls:        {'on' if check.tls else 'off'}",
        f"  user:       {check.user}",
    ]
    if check.slots_covered is not None:
        lines.append(f"  slots:      {check.slots_covered} of {SLOTS} served")
    lines.append("topology")
    for node in check.nodes:
        if node.role == "primary":
            slots = f", {node.slots} slots" if node.slots is not None else ""
            followers = [n.address for n in check.nodes if n.role == "replica" and n.primary == node.address]
            replicas = f", replicas: {', '.join(followers)}" if followers else ", no replica"
            lines.append(f"  primary {node.address}{slots}{replicas} [{node.state}]")
    for node in check.nodes:
        if node.role == "replica" and not any(p.address == node.primary for p in check.nodes):
            lines.append(f"  replica {node.address} of {node.primary} [{node.state}]")
    # "*...*": the rate limiter's keys only contain the prefix (LIMITS:LIMITER/..., {...}/in-flight).
    run = check.probe_prefix.rstrip(":")
    lines.append(f"exercise (keys *{run}*, removed after; median of 3 after a warm-up)")
    for timing in check.timings:
        samples = ", ".join(f"{s:.1f}" for s in timing.samples_ms)
        lines.append(f"  {timing.operation:<31} {timing.median_ms:7.1f} ms  ({samples})")
    if not check.warnings:
        lines.append("no warning: the guard's stores can use this Redis")
    for warning in check.warnings:
        lines.append(f"WARNING {warning.id}")
        lines += textwrap.wrap(warning.message, 100, initial_indent="  ", subsequent_indent="  ")
        lines += textwrap.wrap(
            f"what to do: {warning.advice}", 100, initial_indent="  ", subsequent_indent="    "
        )
    return "\n".join(lines) + "\n"
