"""The serving share vs compute: how much of a served request at 1 user is the model's own computation.

Per scorecard row (twin x served stack x protocol): served p50 at 1 user = in-process p50 of the same
artifact (batch 1, the floor) + the rest (server, protocol, client); the serving share is the rest over
the served p50. Plotted against the twin's FLOPs per inference (models.json): a twin that computes
little is all serving; the share falls as the model computes more. Both p50s come from the run's own
stages, measured at different times (the floor, then the load stage): the difference is indicative
(conventions rule 16), its interval is the serving-tax section's.
"""
from __future__ import annotations

from dataclasses import dataclass

from deploy_compare.app.report import fmt
from deploy_compare.app.report.document import Block, Figure, Para, Table
from deploy_compare.app.report.model import ReportResults
from deploy_compare.app.report.plots import plot
from deploy_compare.app.report.sections import section


@dataclass(frozen=True)
class ShareRow:
    twin: str
    stack: str
    flops: int | None
    in_process_ms: float
    served_ms: float

    @property
    def rest_ms(self) -> float:
        return self.served_ms - self.in_process_ms

    @property
    def share(self) -> float:
        return self.rest_ms / self.served_ms


def share_rows(res: ReportResults) -> list[ShareRow]:
    flops = {m.twin: m.flops for m in res.models if getattr(m, "flops", None)}
    return [ShareRow(twin=s.model, stack=f"{s.stack} {s.protocol}" + (f" ({s.launcher})" if s.launcher else ""),
                     flops=flops.get(s.model), in_process_ms=s.floor_p50_ms, served_ms=s.served_p50_ms)
            for s in res.scorecard if s.floor_p50_ms is not None and s.served_p50_ms]


def flops_text(flops: int | None) -> str:
    if flops is None:
        return "n/a"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return str(flops)


@section("serving-share", "Serving share vs compute")
def serving_share(res: ReportResults, figures: dict[str, Figure]) -> list[Block]:
    rows = share_rows(res)
    if not rows:
        return [Para("No served stack has both an in-process p50 and a served p50 at 1 user in this run.")]
    blocks: list[Block] = [Para(
        "Served p50 at 1 user split into the artifact's in-process p50 (batch 1, the floor) and the rest (server, "
        "protocol, client); *serving share* = the rest / served p50. FLOPs per inference are counted by PyTorch's "
        "FlopCounterMode on the twin (models.json). The two p50s come from different stages of this run, so the "
        "split is indicative; the paired figures are in [the serving tax](#serving-tax).")]
    blocks.append(Table(
        headers=["twin", "stack", "FLOPs / inference", "in-process p50", "rest", "served p50, 1 user", "serving share"],
        rows=[[r.twin, r.stack, flops_text(r.flops), fmt.ms(r.in_process_ms),
               fmt.ms(r.rest_ms), fmt.ms(r.served_ms), f"{100 * r.share:.1f}%"] for r in rows]))
    if "serving_share" in figures:
        blocks.append(figures["serving_share"])
    return blocks


@plot("serving_share")
def serving_share_plot(res: ReportResults, fig) -> str | None:
    rows = [r for r in share_rows(res) if r.flops]
    if not rows:
        return None
    ax = fig.add_subplot(1, 1, 1)
    for stack in sorted({r.stack for r in rows}):
        mine = [r for r in rows if r.stack == stack]
        ax.scatter([r.flops for r in mine], [100 * r.share for r in mine], label=stack, s=45)
        for r in mine:
            ax.annotate(r.twin, (r.flops, 100 * r.share), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per inference (log)")
    ax.set_ylabel("serving share of served p50 at 1 user (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Serving share vs the model's compute")
    ax.legend(fontsize=8)
    return "Serving share (served p50 at 1 user minus in-process p50, over served p50) against the twin's FLOPs."
