"""Planning: which points the floor measures and how they are grouped into processes, from the runtime
registry alone (`deploy_compare.models.runtimes.base`: each runtime class declares its format, library, imports, cost).

Per twin: every artifact of the manifest through the runtime registered for its format, then every
runtime that runs the trained twin (`format is None`) and supports the twin. The profile's scope
(`FloorSettings.twins`, `exclude`) leaves points out as NotRun records.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from deploy_compare.core.config import FloorSettings
from deploy_compare.core.kinds import FloorGrouping, RuntimeFamily
from deploy_compare.core.results import NotRun
from deploy_compare.core.rundir import RunDir
from deploy_compare.models.floor.schema import TRAINED, PointSpec
from deploy_compare.models.runtimes.base import FORMAT_RUNTIMES, RUNTIMES, Runtime, load_runtimes
from deploy_compare.models.zoo import TWINS

GROUPINGS = {
    FloorGrouping.ISOLATED: "one fresh process per model x runtime x threads x repeat",
    FloorGrouping.FAMILY: "one fresh process per runtime framework x threads x repeat, measuring its models in turn",
}


def twin_runtimes() -> list[type[Runtime]]:
    """Runtimes of the trained twin, in a fixed order: by library, the null runtime (no library) last."""
    classes = [cls for _, cls in load_runtimes().items() if cls.runs_trained_twin()]
    return sorted(classes, key=lambda c: (c.framework == RuntimeFamily.NONE, c.framework, c.name))


def plan_points(run_dir: RunDir, twins: Iterable[str], settings: FloorSettings) -> tuple[list[PointSpec], list[NotRun]]:
    """Every point of the floor, in twin order; artifacts whose format has no runtime become NotRun."""
    from deploy_compare.models.exporters.stage import load_manifest

    load_runtimes()
    manifest = load_manifest(run_dir)
    points: list[PointSpec] = []
    not_run: list[NotRun] = []
    twins = list(twins)
    out_of_scope = [t for t in twins if settings.twins and t not in settings.twins]
    not_run += [NotRun(what=f"floor/{t}", reason=f"twin {t} is outside this profile's floor scope "
                       f"(FloorSettings.twins = {', '.join(settings.twins)})",
                       enable_command=f"deploy-compare floor RUN_DIR --profile exhaustive --twins {t}")
                for t in out_of_scope]
    for twin in (t for t in twins if t not in out_of_scope):
        for rec in (r for r in manifest.artifacts if r.twin == twin):
            if rec.format not in FORMAT_RUNTIMES:
                not_run.append(NotRun(what=f"floor/{rec.key}", reason=f"no runtime registered for format "
                                      f"{rec.format!r}", enable_command="add a runtime module under models/runtimes/"))
                continue
            cls = RUNTIMES.get(FORMAT_RUNTIMES.get(rec.format))
            points.append(PointSpec(twin=twin, runtime=cls.name, framework=cls.framework, source=rec.path,
                                    format=cls.format, variant=rec.variant, artifact=rec.key, layout=rec.layout,
                                    converter=rec.converter))
        if twin not in TWINS:  # a user's model (`run --model`): measured through its exported artifacts
            not_run.append(NotRun(what=f"floor/{twin}/eager", reason="the eager and compiled runtimes build a zoo twin "
                                  "from its definition; a user's model is measured through its exported artifacts",
                                  enable_command=""))
            continue
        source = run_dir.twin_dir(twin).relative_to(run_dir.path).as_posix()
        points += [PointSpec(twin=twin, runtime=cls.name, framework=cls.framework, source=source, format=TRAINED)
                   for cls in twin_runtimes() if cls.supports(twin)]
    excluded = [p for p in points if any(fnmatch.fnmatchcase(p.label, pat) for pat in settings.exclude)]
    not_run += [NotRun(what=f"floor/{p.label}", reason="left out of this profile's floor scope (FloorSettings."
                       f"exclude = {', '.join(settings.exclude)})",
                       enable_command=f"deploy-compare floor RUN_DIR --profile exhaustive --twins {p.twin}")
                for p in excluded]
    return [p for p in points if p not in excluded], not_run


@dataclass(frozen=True)
class Group:
    """The points one measuring process measures, in order, at one thread count."""

    name: str
    threads: int
    repeat: int
    points: tuple[PointSpec, ...]

    def estimated_seconds(self) -> float:
        """From the runtimes' cost hints: the scheduler starts the longest processes first."""
        return sum(RUNTIMES.get(p.runtime).cost_hint if p.runtime in RUNTIMES else 1.0 for p in self.points)


def group_points(points: list[PointSpec], settings: FloorSettings) -> list[Group]:
    """Processes to start: per repeat and thread count, one per point (`isolated`) or per framework (`family`)."""
    groups: list[Group] = []
    for repeat in range(settings.repeats):
        for threads in settings.thread_counts:
            if settings.grouping == FloorGrouping.ISOLATED:
                groups += [Group(p.label, threads, repeat, (p,)) for p in points]
                continue
            families: dict[str, list[PointSpec]] = {}
            for p in points:
                families.setdefault(p.framework, []).append(p)
            groups += [Group(str(fw), threads, repeat, tuple(ps)) for fw, ps in families.items()]
    return groups
