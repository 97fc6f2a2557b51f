"""Floor logic on made-up records: grouping, throughput, spread across repeats, graph ratios, histograms,
failed processes becoming failed rows."""
from __future__ import annotations

import numpy as np
import pytest

from core.config import EXHAUSTIVE, FULL, QUICK, FloorSettings
from core.results import Measurement
from core.stats import WindowResult, summarize
from models.floor import (
    BatchFigures,
    FloorPoint,
    Group,
    PointSpec,
    core_slots,
    graph_ratios,
    group_points,
    spread_rows,
    theano_not_run,
)
from models.floor_measure import _figures, hdr_encode


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
        group_points(points, FloorSettings(grouping="bogus"))


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


def test_theano_not_run_names_the_error():
    record = theano_not_run()
    assert record.what == "theano" and ("PyInt_AsLong" in record.reason or "import theano" in record.reason)
    assert "pip install theano" in record.enable_command


def test_failed_point_becomes_a_row(tmp_path):
    """A point whose source is missing fails with its reason; the process and the next point go on."""
    from core.rundir import RunDir
    from models.floor import run_group
    from models.parity import ParityTolerance

    run_dir = RunDir(tmp_path / "run").create()
    bad = PointSpec(twin="mlp", runtime="null", framework="none", source="artifacts/nope", format="trained")
    group = Group(name="none", threads=1, repeat=0, points=(bad, bad))
    points, record = run_group(group, run_dir, QUICK.floor, ParityTolerance(), {core_slots(QUICK.floor)[0]})
    assert [p.ok for p in points] == [False, False] and record.error is None and record.points == 2
    assert "unknown twin 'nope'" in points[0].error and points[1].position_in_group == 1


def test_failed_points_are_listed_as_not_run():
    from models.floor import failed_not_run, import_runtime_modules

    import_runtime_modules()
    bad = point(spec("mlp", "torch-compile"), 1.0, ok=False)
    bad.error = "BackendCompilerFailed: no compiler"
    again = point(spec("mlp", "torch-compile"), 1.0, ok=False, repeat=1)
    (record,) = failed_not_run([bad, again, point(spec("mlp", "torch-eager"), 1.0)])
    assert record.what == "floor/mlp/torch-compile" and "no compiler" in record.reason
    assert "g++" in record.enable_command


def test_cli_refuses_missing_run_folder_and_unknown_twin(tmp_path):
    import argparse

    from core import results
    from core.errors import UserError
    from models.exporters.base import Manifest
    from models.floor import main

    with pytest.raises(UserError, match="manifest.json does not exist"):
        main(argparse.Namespace(run_dir=tmp_path, profile="quick", twins=None, grouping=None))
    results.save(Manifest(run_id="empty"), tmp_path / "manifest.json")
    with pytest.raises(UserError, match="twin\\(s\\) nope have no artifacts"):
        main(argparse.Namespace(run_dir=tmp_path, profile="quick", twins=["nope"], grouping=None))
