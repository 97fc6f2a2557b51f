"""Plots drawn from `ReportResults` into the run folder's plots/ (PNG), one function per plot.

Every axis is labelled with its unit; ranges wider than a decade get a log scale; invalid load
points are drawn as hollow red crosses and labelled, never as results. matplotlib is imported
lazily (Agg backend) so the rest of the report stays light.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deploy_compare.app.report.document import Figure
from deploy_compare.app.report.model import ReportResults
from deploy_compare.core.registry import Registry

Draw = Callable[[ReportResults, object], str | None]  # (results, matplotlib Figure) -> caption, or None (no data)
PLOTS: Registry[Draw] = Registry("plot")
INVALID_STYLE = {"marker": "X", "s": 110, "facecolors": "none", "edgecolors": "#d62728", "linewidths": 1.6,
                 "zorder": 5}


def plot(name: str) -> Callable[[Draw], Draw]:
    return PLOTS.register(name)


def _log_if_wide(ax, which: str, values: list[float], decades: float = 1.0) -> None:
    """Log scale on axis `which` ("x" or "y") when the positive values span more than `decades` decades;
    tick labels stay plain numbers (0.1, 1, 10), not powers of ten."""
    from matplotlib.ticker import FuncFormatter

    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 10 ** decades:
        axis = ax.xaxis if which == "x" else ax.yaxis
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if max(positive) / min(positive) < 100:  # short span: label some minor ticks too, plainly
            axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        else:
            axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def draw_all(res: ReportResults, folder: Path) -> dict[str, Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Figure] = {}
    for name, draw in PLOTS.items():
        fig = plt.figure(figsize=(9, 4.8), dpi=100)
        try:
            caption = draw(res, fig)
            path = folder / f"{name}.png"
            if caption is None:  # no data for it in this run: drop a stale plot of an earlier rendering
                path.unlink(missing_ok=True)
            else:
                fig.tight_layout()
                fig.savefig(path, format="png", metadata={"Software": None})
                figures[name] = Figure(path=f"{folder.name}/{path.name}", caption=caption)
        finally:
            plt.close(fig)
    return figures


@plot("latency_throughput")
def latency_throughput(res: ReportResults, fig) -> str | None:
    closed = [p for p in res.load_points if p.mode == "closed"]
    if not closed:
        return None
    ax = fig.add_subplot(1, 1, 1)
    for key in sorted({(p.stack, p.protocol, p.model) for p in closed}):
        pts = sorted((p for p in closed if (p.stack, p.protocol, p.model) == key), key=lambda p: p.users or 0)
        valid = [p for p in pts if p.valid]
        label = f"{key[0]} {key[1]} ({key[2]})"
        line, = ax.plot([p.throughput for p in valid], [p.latency.p99 for p in valid], "o-", label=f"{label} p99")
        ax.plot([p.throughput for p in valid], [p.latency.p50 for p in valid], "s--", color=line.get_color(),
                alpha=0.7, label=f"{label} p50")
        for p in valid:
            ax.annotate(str(p.users), (p.throughput, p.latency.p99), textcoords="offset points", xytext=(3, 4),
                        fontsize=7, color=line.get_color())
    bad = [p for p in closed if not p.valid]
    if bad:
        ax.scatter([p.throughput for p in bad], [p.latency.p99 for p in bad], label="invalid point (p99)",
                   **INVALID_STYLE)
    ax.set_xlabel("throughput (requests/s, completed)")
    ax.set_ylabel("latency (ms)")
    _log_if_wide(ax, "y", [p.latency.p50 for p in closed] + [p.latency.p99 for p in closed])
    _log_if_wide(ax, "x", [p.throughput for p in closed])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over a curve
    ax.set_title("Closed loop: latency vs throughput (labels = concurrent users)")
    fig.set_size_inches(11.5, 5.2)
    return ("Closed-loop latency (p50 dashed, p99 solid) against completed throughput; each marker is one "
            "concurrency step, labelled with its number of users. Invalid points: hollow red crosses.")


@plot("openloop")
def openloop(res: ReportResults, fig) -> str | None:
    pts = [p for p in res.load_points if p.mode == "open" and p.uncorrected is not None]
    if not pts:
        return None
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{p.stack} {p.protocol}\n{p.model} @ {p.target_rate:.0f}/s" for p in pts]
    xs = range(len(pts))
    width = 0.2
    series = (("p50 uncorrected", [p.uncorrected.p50 for p in pts], "#9ecae1", -1.5),
              ("p50 corrected", [p.latency.p50 for p in pts], "#3182bd", -0.5),
              ("p99 uncorrected", [p.uncorrected.p99 for p in pts], "#fdae6b", 0.5),
              ("p99 corrected", [p.latency.p99 for p in pts], "#e6550d", 1.5))
    hatches = ["xx" if not p.valid else "" for p in pts]
    for label, values, color, offset in series:
        bars = ax.bar([x + offset * width for x in xs], values, width, label=label, color=color)
        for bar, hatch in zip(bars, hatches):
            if hatch:  # an invalid point: hatched, red-edged and labelled, never read as a result
                bar.set_hatch(hatch)
                bar.set_edgecolor("#d62728")
                bar.set_alpha(0.45)
    for x, p in zip(xs, pts):
        if not p.valid:
            ax.scatter([x], [p.latency.p99], **INVALID_STYLE)
            ax.annotate("INVALID", (x, p.latency.p99), textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=8, color="#d62728")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("latency (ms)")
    _log_if_wide(ax, "y", [v for _, values, _, _ in series for v in values])
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Open loop: latency from scheduled send (corrected) vs from actual send (uncorrected)")
    return ("Open-loop points: corrected latency counts the time a request waited behind its schedule; the gap to "
            "the uncorrected figure is what coordinated omission hides.")


@plot("floor")
def floor(res: ReportResults, fig) -> str | None:
    rows = [f for f in res.floor if f.batch == 1 and f.latency is not None]
    if not rows:
        return None
    rows.sort(key=lambda f: (f.twin, f.latency.p50))
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{f.twin} · {f.label}" + (f" ({f.framework})" if f.format == "onnx" else "") + f" · {f.threads}t"
              for f in rows]
    ax.barh(range(len(rows)), [f.latency.p50 for f in rows], color="#3182bd", label="p50")
    ax.scatter([f.latency.p99 for f in rows], range(len(rows)), marker="|", s=120, color="#e6550d", label="p99",
               zorder=4)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency per batch-1 call (ms)")
    _log_if_wide(ax, "x", [f.latency.p50 for f in rows] + [f.latency.p99 for f in rows])
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("In-process floor at batch 1")
    fig.set_size_inches(9, max(3.0, 0.28 * len(rows) + 1.2))
    return "In-process latency at batch 1 per twin, runtime and thread count (bar: p50, tick: p99)."


@plot("artifact_sizes")
def artifact_sizes(res: ReportResults, fig) -> str | None:
    if not res.artifacts:
        return None
    rows = sorted(res.artifacts, key=lambda a: (a.twin, a.format, a.variant))
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#d62728" if a.parity == "fail" else "#3182bd" for a in rows]
    ax.barh(range(len(rows)), [a.bytes / 1e3 for a in rows], color=colors)
    ax.set_yticks(range(len(rows)), [f"{a.twin} · {a.format} · {a.variant}" for a in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("artifact size (kB)")
    _log_if_wide(ax, "x", [a.bytes for a in rows])
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.set_title("Artifact size per twin, format and variant (red: failed parity)")
    fig.set_size_inches(9, max(3.0, 0.25 * len(rows) + 1.2))
    return "Size on disk of every exported artifact."


STACK_COLORS = ("#9ecae1", "#3182bd", "#fdae6b", "#e6550d")


@plot("cold_start")
def cold_start(res: ReportResults, fig) -> str | None:
    rows = res.cold_start
    if not rows:
        return None
    ax = fig.add_subplot(1, 1, 1)
    series = (("process start -> ready", [c.start_to_ready_s for c in rows]),
              ("model load (server's own figure)", [c.model_load_s for c in rows]),
              ("first request", [None if c.first_request_ms is None else c.first_request_ms / 1e3 for c in rows]),
              ("sequential p50 afterwards", [None if c.steady_p50_ms is None else c.steady_p50_ms / 1e3
                                             for c in rows]))
    height = 0.8 / len(series)
    for k, ((label, values), color) in enumerate(zip(series, STACK_COLORS)):
        ys = [y - 0.4 + (k + 0.5) * height for y in range(len(rows))]
        ax.barh([y for y, v in zip(ys, values) if v], [v for v in values if v], height, color=color, label=label)
    ax.set_yticks(range(len(rows)), [f"{c.stack} ({c.model})" for c in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    _log_if_wide(ax, "x", [v for _, values in series for v in values if v])
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4)
    ax.set_title("Cold start per server endpoint")
    fig.set_size_inches(9, max(3.0, 0.55 * len(rows) + 1.4))
    return ("Cold start per endpoint: server process start to ready, the model load time the server reports (models "
            "load during start-up, so it overlaps the first bar), the first request, and the sequential batch-1 p50 "
            "once warm.")


# one colour per component name (tax.COMPONENTS order), the same in every run
TAX_COLORS = ("#756bb1", "#bdbdbd", "#9ecae1", "#fdae6b", "#fd8d3c", "#c6dbef", "#08519c", "#6baed6", "#969696")


@plot("serving_tax")
def serving_tax(res: ReportResults, fig) -> str | None:
    rows = res.tax
    if not rows:
        return None
    from deploy_compare.app.report.tax import COMPONENTS

    present = {c.name for t in rows for c in t.components}
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))
    left = [0.0] * len(rows)
    for name, color in zip(COMPONENTS, TAX_COLORS):
        if name not in present:
            continue
        values = [next((c.ms for c in t.components if c.name == name), 0.0) for t in rows]
        ax.barh(ys, values, left=left, color=color, label=name, edgecolor="white", linewidth=0.5)
        left = [a + b for a, b in zip(left, values)]
    ax.scatter([t.client_mean_ms for t in rows], ys, marker="|", s=300, color="black", zorder=5,
               label="client mean")
    ax.set_yticks(ys, [f"{t.stack} {t.protocol}" + (f" ({t.launcher})" if t.launcher else "") + f"\n{t.point}"
                       for t in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean time per request (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("The serving tax, per point: where a request's mean time goes")
    fig.set_size_inches(12, max(3.0, 0.5 * len(rows) + 1.4))
    return ("Each bar splits one point's client mean (black tick) into the generator's own share, time outside "
            "the server's clock, queue, the frontend's worker thread, the Python worker's IPC, the handler's "
            "parse + serialize, and inference (the in-process floor of the same artifact).")


@plot("scorecard")
def scorecard(res: ReportResults, fig) -> str | None:
    rows = [r for r in res.scorecard if r.served_p50_ms is not None or r.saturation is not None]
    if not rows:
        return None
    labels = [f"{r.stack} {r.protocol}" + (f" ({r.launcher})" if r.launcher else "") for r in rows]
    ys = list(range(len(rows)))
    lat, sat = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    h = 0.38
    lat.barh([y - h / 2 for y in ys], [r.floor_p50_ms or 0.0 for r in rows], h, color="#9ecae1",
             label="in-process p50 (same artifact)")
    lat.barh([y + h / 2 for y in ys], [r.served_p50_ms or 0.0 for r in rows], h, color="#3182bd",
             label="served p50, 1 user")
    lat.set_yticks(ys, labels, fontsize=8)
    lat.invert_yaxis()
    lat.set_xlabel("latency (ms)")
    _log_if_wide(lat, "x", [v for r in rows for v in (r.floor_p50_ms, r.served_p50_ms) if v])
    lat.grid(True, axis="x", which="both", alpha=0.3)
    lat.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    lat.set_title("Latency: in-process vs served")
    found = [bool(r.saturation and r.saturation.found) for r in rows]
    bars = sat.barh(ys, [(r.saturation.rps or 0.0) if r.saturation else 0.0 for r in rows], color="#e6550d")
    for bar, seen in zip(bars, found):
        if not seen:  # a lower bound: hatched and pale, with an arrow-like label
            bar.set_hatch("//")
            bar.set_alpha(0.45)
    for y, r, seen in zip(ys, rows, found):
        if r.saturation and r.saturation.rps:
            sat.annotate("" if seen else "  ≥ (not saturated)", (r.saturation.rps, y), va="center", fontsize=7)
    sat.set_yticks(ys, [""] * len(rows))
    sat.invert_yaxis()
    sat.set_xlabel("requests/s")
    sat.grid(True, axis="x", alpha=0.3)
    sat.set_title("Saturation (hatched: lower bound)")
    fig.set_size_inches(12, max(3.0, 0.45 * len(rows) + 1.6))
    return ("Scorecard: per served stack, the in-process p50 of its artifact beside the served p50 at 1 user, and "
            "its saturation throughput (hatched where the sweep did not saturate: a lower bound).")
