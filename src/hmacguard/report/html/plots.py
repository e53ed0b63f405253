"""The HTML report's plots: matplotlib figures rendered to inline SVG (Agg backend, no display).

matplotlib is imported on first use only, so that a report without plots, and every other command,
never pays for it. Text stays text in the SVG (``svg.fonttype: none``): the file is smaller and the
browser renders the labels with its own fonts. Each figure gets its own ``svg.hashsalt`` so that the
ids matplotlib generates (clip paths) are deterministic and distinct between the plots of one page.

Every function returns the ``<svg>`` element as a string, or None when there is nothing to draw.
"""

from __future__ import annotations

import importlib
import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hmacguard.leaks.analysis import RetentionSite
from hmacguard.scan.model import BurstResult, Measurement, RetentionResult, Verdict
from hmacguard.scan.probes.base import size_text

__all__ = [
    "burst_timeline",
    "findings_by_rule",
    "latency_by_size",
    "leak_series",
    "reconstruct_schedule",
    "rss_by_size",
    "rss_over_retention",
]

_MiB = 1024 * 1024
#: One colour per framing (and per series where there are more), readable for most colour visions.
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
_FRAMING_COLOUR = {"content-length": "#1f77b4", "chunked": "#d62728"}
_VERDICT_MARKER = {Verdict.ACCEPTED: "o", Verdict.REFUSED: "x", Verdict.ERROR: "s", Verdict.NO_ANSWER: "v"}
_SEVERITY_COLOUR = {
    "critical": "#7b1f1f",
    "high": "#d62728",
    "medium": "#ff7f0e",
    "low": "#1f77b4",
    "info": "#7f7f7f",
}
_LOCK = threading.Lock()


@contextmanager
def _figure(name: str, height: float = 3.4) -> Iterator[tuple[Any, Any]]:
    import matplotlib

    # No display is ever needed; a Figure without pyplot keeps no global figure registry either.
    matplotlib.use("Agg", force=False)
    figure_module: Any = importlib.import_module("matplotlib.figure")
    style = {
        "svg.fonttype": "none",
        "svg.hashsalt": f"hmacguard-{name}",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
    # rc_context changes matplotlib's global settings for its duration: one figure at a time.
    with _LOCK, matplotlib.rc_context(style):  # type: ignore[arg-type]
        fig = figure_module.Figure(figsize=(6.0, height), dpi=100)
        yield fig, fig.subplots()


def _svg(fig: Any, name: str) -> str:
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "hmacguard"})
    text = buffer.getvalue()
    # Drop the XML prolog and DOCTYPE: the <svg> element is embedded in an HTML document.
    svg = text[text.index("<svg") :]
    return svg.replace("<svg ", f'<svg class="plot" data-plot="{name}" role="img" ', 1)


def _mib(n: float) -> float:
    return n / _MiB


def _size_axis(ax: Any, sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    # Ticks at round sizes (powers of two, every other one on a wide range), not at every probed
    # size: bisection probes land a few percent apart and their labels would overprint.
    low = max(1, min(sizes)).bit_length() - 1
    high = (max(sizes) - 1).bit_length()
    step = 1 if high - low <= 8 else 2
    ticks = [1 << k for k in range(low, high + 1, step)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([size_text(t) for t in ticks], rotation=30, ha="right")
    ax.minorticks_off()
    ax.set_xlabel("body size")


def _series(measurements: Sequence[Measurement]) -> dict[str, list[Measurement]]:
    """Measurements grouped by variant label, each sorted by size (only the size-probing phases)."""
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        if m.phase in ("retention", "held-uploads", "burst"):
            continue
        groups.setdefault(m.variant.label, []).append(m)
    return {label: sorted(ms, key=lambda m: m.size) for label, ms in groups.items()}


def _style(label: str, index: int) -> tuple[str, str]:
    framing = label.split(" ", 1)[0]
    colour = _FRAMING_COLOUR.get(framing, _PALETTE[index % len(_PALETTE)])
    # Content types of one framing share its colour and differ by line style.
    dashes = ("-", "--", ":", "-.")
    return colour, dashes[index % len(dashes)]


def _plot_by_size(ax: Any, groups: dict[str, list[Measurement]], value: Any) -> list[int]:
    sizes: list[int] = []
    per_framing: dict[str, int] = {}
    for label, ms in groups.items():
        points = [(m, value(m)) for m in ms]
        points = [(m, v) for m, v in points if v is not None]
        if not points:
            continue
        framing = label.split(" ", 1)[0]
        colour, dash = _style(label, per_framing.get(framing, 0))
        per_framing[framing] = per_framing.get(framing, 0) + 1
        xs = [m.size for m, _ in points]
        ax.plot(xs, [v for _, v in points], dash, color=colour, label=label, linewidth=1.4)
        for m, v in points:
            marker = _VERDICT_MARKER.get(m.verdict, "d")
            ax.plot(
                [m.size], [v], marker, color=colour, markersize=6, mfc="white" if marker == "o" else colour
            )
        sizes += xs
    return sizes


def rss_by_size(measurements: Sequence[Measurement]) -> str | None:
    """Peak server RSS growth against body size, one line per variant (colour = framing)."""
    groups = _series([m for m in measurements if m.rss_delta is not None])
    if not groups:
        return None
    with _figure("rss-by-size") as (fig, ax):
        sizes = _plot_by_size(ax, groups, lambda m: _mib(m.rss_delta or 0))
        if not sizes:
            return None
        # y = x on a log-x axis is a curve: sample it, or a straight segment would lie.
        low, top = min(sizes), max(sizes)
        steps = 48
        xs = [low * (top / low) ** (i / steps) for i in range(steps + 1)] if top > low else [low]
        ax.plot(xs, [_mib(x) for x in xs], color="#999999", linewidth=0.8, linestyle=(0, (1, 3)),
                label="1 × body size")  # fmt: skip
        _size_axis(ax, sizes)
        ax.set_ylabel("peak RSS growth (MiB)")
        ax.set_title("Server memory against body size (o accepted, x refused)")
        ax.legend(fontsize=7, loc="upper left")
        return _svg(fig, "rss-by-size")


def latency_by_size(measurements: Sequence[Measurement]) -> str | None:
    """Time to the answer against body size, per variant."""
    groups = _series(measurements)
    if not groups:
        return None
    with _figure("latency-by-size") as (fig, ax):
        sizes = _plot_by_size(ax, groups, lambda m: m.exchange.total_s * 1000)
        if not sizes:
            return None
        _size_axis(ax, sizes)
        ax.set_yscale("log")
        ax.set_ylabel("time to answer (ms, log)")
        ax.set_title("Latency against body size (o accepted, x refused)")
        ax.legend(fontsize=7, loc="upper left")
        return _svg(fig, "latency-by-size")


def rss_over_retention(retention: RetentionResult) -> str | None:
    """RSS after each round of identical requests, with the fitted growth per request."""
    if len(retention.rss) < 2:
        return None
    with _figure("retention") as (fig, ax):
        xs = [retention.warmup + i * retention.per_round for i in range(len(retention.rss))]
        ys = [_mib(v) for v in retention.rss]
        ax.plot(xs, ys, "o-", color=_PALETTE[0], label="RSS after each round")
        fitted = [ys[0] + _mib(retention.bytes_per_request) * (x - xs[0]) for x in xs]
        ax.plot(xs, fitted, "--", color=_PALETTE[1],
                label=f"fit: {size_text(retention.bytes_per_request)}/request")  # fmt: skip
        body_line = [ys[0] + _mib(retention.size) * (x - xs[0]) for x in xs]
        ax.plot(
            xs,
            body_line,
            ":",
            color="#999999",
            label=f"if every body ({size_text(retention.size)}) were kept",
        )
        ax.set_ylim(min(ys) - 1, max(max(ys), min(max(body_line), max(ys) * 1.5)) + 1)
        ax.set_xlabel(f"requests sent (after {retention.warmup} warm-up)")
        ax.set_ylabel("server RSS (MiB)")
        ax.set_title(f"Retention: {retention.per_round} requests of {size_text(retention.size)} per round")
        ax.legend(fontsize=7, loc="upper left")
        return _svg(fig, "retention")


def reconstruct_schedule(latencies: Sequence[float], workers: int) -> list[tuple[float, float, int]]:
    """(start, duration, worker) of each request when ``workers`` threads each take the next request
    as soon as they are free — how the burst's thread pool sends them, in submission order."""
    free = [0.0] * max(1, workers)
    out = []
    for duration in latencies:
        worker = min(range(len(free)), key=free.__getitem__)
        start = free[worker]
        free[worker] = start + duration
        out.append((start, duration, worker))
    return out


def burst_timeline(burst: BurstResult) -> str | None:
    """Each burst request as a bar on its worker's lane, against the quiet latency."""
    if not burst.latencies:
        return None
    schedule = reconstruct_schedule(burst.latencies, burst.concurrency)
    quiet = sorted(burst.quiet_latencies)[len(burst.quiet_latencies) // 2] if burst.quiet_latencies else None
    with _figure("burst", height=max(2.4, 1.2 + 0.35 * burst.concurrency)) as (fig, ax):
        for i, (start, duration, worker) in enumerate(schedule):
            slow = quiet is not None and duration > 10 * quiet
            ax.barh(worker, duration * 1000, left=start * 1000, height=0.6,
                    color=_PALETTE[1] if slow else _PALETTE[0], edgecolor="white", linewidth=0.5)  # fmt: skip
            if len(schedule) <= 40:
                ax.text((start + duration / 2) * 1000, worker, str(i + 1), ha="center", va="center",
                        fontsize=6, color="white")  # fmt: skip
        xlabel = "ms since the burst began (rebuilt from each request's latency)"
        if quiet is not None:
            # Said in the axis label rather than a legend, which would sit on top of the bars.
            ax.axvline(quiet * 1000, color="#555555", linestyle=":")
            xlabel += f"; dotted: quiet latency {quiet * 1000:.1f} ms"
        ax.set_yticks(range(burst.concurrency))
        ax.set_yticklabels([f"conn {w + 1}" for w in range(burst.concurrency)])
        ax.invert_yaxis()
        ax.set_xlabel(xlabel, fontsize=8)
        outcomes = ", ".join(f"{k}×{v}" for k, v in burst.statuses.items())
        ax.set_title(
            f"Burst: {burst.requests} × {size_text(burst.size)}, {burst.concurrency} at a time ({outcomes})"
        )
        return _svg(fig, "burst")


def findings_by_rule(counts: Sequence[tuple[str, str, int]]) -> str | None:
    """A horizontal bar per rule: (rule id, severity label, count)."""
    if not counts:
        return None
    with _figure("findings", height=max(2.0, 0.9 + 0.32 * len(counts))) as (fig, ax):
        rules = [c[0] for c in counts]
        ax.barh(range(len(counts)), [c[2] for c in counts],
                color=[_SEVERITY_COLOUR.get(c[1], "#7f7f7f") for c in counts])  # fmt: skip
        ax.set_yticks(range(len(counts)))
        ax.set_yticklabels(rules)
        ax.invert_yaxis()
        ax.set_xlabel("findings")
        ax.set_title("Findings by rule (colour = severity)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        return _svg(fig, "findings")


def leak_series(sites: Sequence[RetentionSite], requests_label: str = "requests") -> str | None:
    """Bytes each reported line keeps against requests served (a leak climbs; a cache levels off)."""
    drawn = [s for s in sites if len(s.series) >= 2][:8]
    if not drawn:
        return None
    with _figure("leaks") as (fig, ax):
        for i, site in enumerate(drawn):
            xs = [n for n, _ in site.series]
            ys = [b / 1024 for _, b in site.series]
            style = "-" if site.trend == "growing" else "--"
            ax.plot(xs, ys, style, marker="o", markersize=3, color=_PALETTE[i % len(_PALETTE)],
                    label=f"{site.where} ({site.trend})")  # fmt: skip
        ax.set_xlabel(requests_label)
        ax.set_ylabel("bytes kept (KiB)")
        ax.set_title("Memory kept per line (solid: still growing, dashed: plateau)")
        ax.legend(fontsize=7, loc="upper left")
        return _svg(fig, "leaks")
