"""Floor logic on made-up records: grouping, throughput, spread across repeats, graph ratios, histograms,
failed processes becoming failed rows."""
from __future__ import annotations

import os

import numpy as np
import pytest

from deploy_compare.core.config import EXHAUSTIVE, FULL, QUICK, FloorSettings
from deploy_compare.core.results import Measurement
from deploy_compare.core.stats import WindowResult, summarize
from deploy_compare.models.floor.derived import failed_not_run, graph_ratios, spread_rows
from deploy_compare.models.floor.measure import _figures, hdr_encode
from deploy_compare.models.floor.plan import Group, group_points
from deploy_compare.models.floor.schedule import Scheduler, core_slots
from deploy_compare.models.floor.schema import BatchFigures, FloorPoint, PointSpec
from tests.conftest import OPT_IN


def spec(twin: str, runtime: str, framework: str = "pytorch", variant: str = "fp32") -> PointSpec:
    return PointSpec(twin=twin, runtime=runtime, framework=framework, source=f"artifacts/{twin}", format="trained",
                     variant=variant)


def point(s: PointSpec, p50: float, thr32: float = 100.0, repeat: int = 0, threads: int = 1,
          ok: bool = True) -> FloorPoint:
    def figures(batch: int, value: float, thr: float) -> BatchFigures:
        return BatchFigures(batch=batch, latency=Measurement("l", "ms", False, [value], summarize([value])),
                            throughput=thr, calls=1, warmup_calls=0, window_seconds=1.0, backed_percentiles=[])

    return FloorPoint(spec=s, threads=threads, repeat=repeat, group="g", group_size=1, position_in_group=0, ok=ok,
                      batches=[figures(1, p50, 1000.0 / p50), figures(32, p50 * 4, thr32)] if ok else [])


def test_grouping_isolated_vs_family():
    points = [spec("mlp", "torch-eager"), spec("mlp", "torchscript"), spec("mlp", "keras-eager", "tensorflow")]
    isolated = group_points(points, FloorSettings(thread_counts=(1, 2), repeats=3))
    assert len(isolated) == 3 * 2 * 3 and all(len(g.points) == 1 for g in isolated)
    family = group_points(points, FloorSettings(thread_counts=(1,), repeats=1, grouping="family"))
    assert [(g.name, len(g.points)) for g in family] == [("pytorch", 2), ("tensorflow", 1)]
    with pytest.raises(ValueError, match="grouping"):
        FloorSettings(grouping="bogus")


def test_profiles():
    assert FULL.floor.grouping == "isolated" and FULL.floor.repeats == 3 and FULL.floor.thread_counts == (1,)
    assert FULL.floor.window.min_samples == 500 and FULL.floor.window.min_seconds == 10
    assert EXHAUSTIVE.floor.thread_counts == (1, 2) and EXHAUSTIVE.floor.parallel_processes == 1
    assert not EXHAUSTIVE.floor.twins and not EXHAUSTIVE.floor.exclude
    assert QUICK.floor.grouping == "family" and QUICK.floor.thread_counts == (1,)


def test_core_slots_start_with_pin_cpu():
    slots = core_slots(FloorSettings())
    assert slots[0] == 0 or 0 not in slots
    assert sorted(slots) == sorted(set(slots))


def test_figures_throughput_and_histogram():
    window = WindowResult(samples=[0.001] * 40 + [0.002] * 10, warmup_count=5, window_seconds=0.06)
    fig = _figures(32, window, max_raw=100)
    assert fig.throughput == pytest.approx(32 * 50 / 0.06)
    assert fig.latency.samples[0] == pytest.approx(1.0) and fig.latency.stats["p50"] == pytest.approx(1.0)
    assert fig.histogram is None and fig.backed_percentiles == ["p50", "p90"]
    small = _figures(1, window, max_raw=10)
    assert small.latency.samples == [] and small.histogram
    assert small.latency.stats["max"] == pytest.approx(2.0)


def test_hdr_histogram_round_trip():
    from hdrh.histogram import HdrHistogram

    rng = np.random.default_rng(0)
    seconds = rng.uniform(1e-5, 1e-3, 5000)
    hist = HdrHistogram.decode(hdr_encode(list(seconds)))
    assert hist.get_total_count() == 5000
    assert hist.get_value_at_percentile(99) / 1e9 == pytest.approx(np.percentile(seconds, 99), rel=2e-3)


def test_spread_across_repeats():
    s = spec("mlp", "torchscript")
    pts = [point(s, v, repeat=i) for i, v in enumerate((1.0, 1.2, 1.1))]
    pts.append(point(spec("cnn", "torchscript"), 2.0))  # one repeat only: no spread row
    (row,) = spread_rows(pts)
    assert row.twin == "mlp" and row.p50_ms == [1.0, 1.2, 1.1]
    assert row.interval["median"] == pytest.approx(1.1) and row.interval["repeats"] == 3
    assert row.interval["ci_lo"] < 1.1 < row.interval["ci_hi"]


def test_graph_ratios_from_medians():
    pts = [point(spec("mlp", "torch-eager"), p50, thr32=100.0, repeat=i) for i, p50 in enumerate((2.0, 3.0, 2.5))]
    pts += [point(spec("mlp", "torchscript"), 1.0, thr32=250.0)]
    pts += [point(spec("mlp", "keras-eager", "tensorflow"), 4.0), point(spec("mlp", "keras-function", "tensorflow"),
                                                                         1.0, ok=False)]
    pts += [point(spec("mlp", "torchscript", variant="int8"), 0.1)]  # quantized: never on the graph row
    (row,) = graph_ratios(pts)
    assert (row.eager, row.graph, row.framework) == ("torch-eager", "torchscript", "pytorch")
    assert row.eager_p50_ms == 2.5 and row.latency_ratio == pytest.approx(2.5)
    assert row.batch == 32 and row.throughput_ratio == pytest.approx(2.5)


def test_failed_point_becomes_a_row(tmp_path):
    """A point whose source is missing fails with its reason; the process and the next point go on."""
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.parity import ParityTolerance

    run_dir = RunDir(tmp_path / "run").create()
    bad = PointSpec(twin="mlp", runtime="null", framework="none", source="artifacts/nope", format="trained")
    group = Group(name="none", threads=1, repeat=0, points=(bad, bad))
    scheduler = Scheduler(run_dir, QUICK.floor, ParityTolerance())
    points, record = scheduler.run_group(group, {core_slots(QUICK.floor)[0]})
    assert [p.ok for p in points] == [False, False] and record.error is None and record.points == 2
    assert "unknown twin 'nope'" in points[0].error and points[1].position_in_group == 1


def test_failed_points_are_listed_as_not_run():
    bad = point(spec("mlp", "torch-compile"), 1.0, ok=False)
    bad.error = "BackendCompilerFailed: no compiler"
    again = point(spec("mlp", "torch-compile"), 1.0, ok=False, repeat=1)
    (record,) = failed_not_run([bad, again, point(spec("mlp", "torch-eager"), 1.0)])
    assert record.what == "floor/mlp/torch-compile" and "no compiler" in record.reason
    assert "g++" in record.enable_command


def test_cli_refuses_missing_run_folder_and_unknown_twin(tmp_path):
    import argparse

    from deploy_compare.core import results
    from deploy_compare.core.errors import UserError
    from deploy_compare.models.exporters.base import Manifest
    from deploy_compare.models.floor import main

    with pytest.raises(UserError, match="manifest.json does not exist"):
        main(argparse.Namespace(run_dir=tmp_path, profile="quick", twins=None, grouping=None, try_theano=None))
    results.save(Manifest(run_id="empty"), tmp_path / "manifest.json")
    with pytest.raises(UserError, match="twin\\(s\\) nope have no artifacts"):
        main(argparse.Namespace(run_dir=tmp_path, profile="quick", twins=["nope"], grouping=None,
                                try_theano=None))


def test_runtimes_declare_what_the_floor_plans_with():
    from deploy_compare.core.kinds import ArtifactFormat, RuntimeFamily
    from deploy_compare.models.runtimes.base import FORMAT_RUNTIMES, RUNTIMES, load_runtimes

    load_runtimes()
    assert set(FORMAT_RUNTIMES.names()) == set(ArtifactFormat)  # every artifact format has a runtime
    for name, cls in RUNTIMES.items():
        assert cls.framework in set(RuntimeFamily) and isinstance(cls.imports, tuple), name
        assert cls.cost_hint > 0, name
        if cls.eager:  # the eager side of a graph pair is a registered eager runtime of the same library
            eager = RUNTIMES.get(cls.eager)
            assert eager.framework == cls.framework and not eager.graph and eager.runs_trained_twin(), name
    pairs = {(e, g) for _, e, g in __import__("deploy_compare.models.floor.derived", fromlist=["x"]).graph_pairs()}
    assert pairs == {("keras-eager", "keras-function"), ("keras-eager", "savedmodel"),
                     ("torch-eager", "torchscript"), ("torch-eager", "torch-compile"), ("torch-eager", "torch-export"),
                     ("torch-eager", "aoti")}


def test_a_runtime_must_declare_its_library_and_imports():
    from deploy_compare.models.runtimes.base import Runtime

    with pytest.raises(TypeError, match="'half-done' .* does not declare framework, imports"):
        type("HalfDone", (Runtime,), {"name": "half-done"})


def test_a_new_runtime_module_is_planned_without_other_edits(tmp_path, monkeypatch):
    """A runtime registered on its own (as a new module under models/runtimes/ would be) is planned for the
    trained twins it supports, grouped by its library, with its cost hint."""
    from deploy_compare.core import results
    from deploy_compare.core.kinds import RuntimeFamily
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.exporters.base import Manifest
    from deploy_compare.models.floor.plan import plan_points
    from deploy_compare.models.runtimes.base import RUNTIMES, load_runtimes
    from deploy_compare.models.runtimes.null import NullRuntime

    class Fake(NullRuntime):
        name = "fake-onnx-eager"
        framework = RuntimeFamily.ONNXRUNTIME
        imports = ("onnxruntime",)
        cost_hint = 7.5
        twins = ("mlp",)

    load_runtimes()
    monkeypatch.setitem(RUNTIMES._items, Fake.name, Fake)
    run_dir = RunDir(tmp_path / "run").create()
    results.save(Manifest(run_id="run"), run_dir.manifest)
    points, not_run = plan_points(run_dir, ["mlp", "cnn"], FloorSettings())
    by_twin = {t: [p.runtime for p in points if p.twin == t] for t in ("mlp", "cnn")}
    assert "fake-onnx-eager" in by_twin["mlp"] and "fake-onnx-eager" not in by_twin["cnn"]
    assert "pytensor" in by_twin["mlp"] and "pytensor" not in by_twin["cnn"]  # PyTensor rebuilds Dense twins only
    assert by_twin["mlp"][-1] == "null" and not not_run
    (group,) = [g for g in group_points(points, QUICK.floor) if g.name == "onnxruntime"]
    assert group.estimated_seconds() == pytest.approx(7.5)


def test_scheduler_stops_only_the_processes_it_started(tmp_path):
    import sys

    from deploy_compare.core.proc import ManagedProcess
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.floor.schedule import MEASURE_TARGET
    from deploy_compare.models.parity import ParityTolerance

    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    theirs = ManagedProcess(sleep, tmp_path / "theirs.log", name=MEASURE_TARGET).start()
    try:
        scheduler = Scheduler(RunDir(tmp_path / "run"), QUICK.floor, ParityTolerance())
        other = ManagedProcess(sleep, tmp_path / "other.log", name="someone-else").start()
        mine = ManagedProcess(sleep, tmp_path / "mine.log", name=MEASURE_TARGET).start()
        try:
            assert scheduler.started() == [mine]
            scheduler.stop_started()
            assert not mine.alive() and theirs.alive() and other.alive()
        finally:
            other.stop(timeout=5)
            mine.stop(timeout=5)
    finally:
        theirs.stop(timeout=5)


def test_theano_not_tried_says_how_to_try():
    from deploy_compare.models.floor import theano

    record = theano.not_run(QUICK.floor, "quick", None)
    assert record.what == "theano" and record.reason.startswith("not tried in this profile (quick")
    assert record.enable_command.startswith("deploy-compare floor RUN_DIR --try-theano")
    assert not QUICK.floor.try_theano and FULL.floor.try_theano and EXHAUSTIVE.floor.try_theano


def test_theano_attempt_records_a_failing_command(tmp_path):
    """The attempt with stand-in commands (no network): the failing step's exit code and output become the
    reason; the steps after it do not run; versions come from the venv's interpreter when there is one."""
    import sys
    from dataclasses import replace

    from deploy_compare.models.floor import theano

    def steps(venv):
        return [theano.Step("venv", (sys.executable, "-c", "print('made')")),
                theano.Step("install", (sys.executable, "-c",
                                        "import sys; print('ERROR: No matching distribution found for theano', "
                                        "file=sys.stderr); sys.exit(3)")),
                theano.Step("import", (sys.executable, "-c", "print('never')"))]

    attempt = theano.attempt(replace(QUICK.floor, theano_timeout_s=60), tmp_path / "logs", steps)
    assert not attempt.ok and [s.name for s in attempt.steps] == ["venv", "install"]
    assert [s.exit_code for s in attempt.steps] == [0, 3] and "No matching distribution" in attempt.steps[1].output_tail
    assert attempt.versions == {}  # no venv was made: nothing to ask
    record = theano.not_run(QUICK.floor, "full", attempt)
    assert "exited 3" in record.reason and "No matching distribution found for theano" in record.reason
    assert "--try-theano" in record.enable_command


def test_theano_attempt_stops_at_its_budget(tmp_path):
    import sys
    import time
    from dataclasses import replace

    from deploy_compare.models.floor import theano

    def steps(venv):
        return [theano.Step("install", (sys.executable, "-c", "import time; time.sleep(60)"))]

    t0 = time.perf_counter()
    attempt = theano.attempt(replace(QUICK.floor, theano_timeout_s=1.0), tmp_path / "logs", steps)
    assert time.perf_counter() - t0 < 30
    (step,) = attempt.steps
    assert step.exit_code is None and not attempt.ok
    assert "stopped after" in theano.not_run(QUICK.floor, "full", attempt).reason


def test_theano_failure_summary_names_the_error_and_compiler_errors():
    from deploy_compare.models.floor.theano import summarize

    log = ("Traceback (most recent call last):\n  File \"x.py\", line 1\nImportError: Version check failed\n"
           "Traceback (most recent call last):\n"
           "Exception: Compilation failed (return status=1): /tmp/dc-theano-ab12/cdir/lazylinker_ext/mod.cpp:499:25: "
           "error: 'PyInt_AsLong' was not declared in this scope. /tmp/dc-theano-ab12/cdir/lazylinker_ext/"
           "mod.cpp:528:21: error: 'PyInt_AsLong' was not declared in this scope.\n")
    text = summarize(log)
    assert text.startswith("Exception: Compilation failed") and "dc-theano" not in text
    errors = text.split(" || compiler errors: ")[1]  # one per distinct message
    assert errors == "mod.cpp:499:25: error: 'PyInt_AsLong' was not declared in this scope"
    assert summarize("line one\nline two\n") == "line one | line two"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("DEPLOY_COMPARE_TRY_THEANO") != "1",
                    reason=f"{OPT_IN} (DEPLOY_COMPARE_TRY_THEANO=1 pytest tests/test_floor_units.py -k real_theano): "
                           "the real attempt downloads theano, numpy and scipy (about 45 s here)")
def test_real_theano_attempt(tmp_path):
    from deploy_compare.models.floor import theano

    attempt = theano.attempt(FULL.floor, tmp_path / "logs")
    assert attempt.steps and attempt.steps[0].name == "venv" and attempt.versions.get("python")
    record = theano.not_run(FULL.floor, "full", attempt)
    assert record.reason and attempt.seconds <= FULL.floor.theano_timeout_s + theano.VERSIONS_TIMEOUT_S + 30
