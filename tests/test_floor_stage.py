"""The floor on the shared spine run (mlp + cnn): every runtime measured in fresh processes, each
runtime's predictions checked against the reference logits, derived rows and the JSON round trip."""
from __future__ import annotations

import pytest
from rich.console import Console

from deploy_compare.core import results
from deploy_compare.core.config import FloorSettings
from deploy_compare.core.stats import WindowPolicy
from deploy_compare.models.floor import FloorResults, measure
from deploy_compare.models.floor.derived import graph_pairs
from deploy_compare.models.runtimes.base import load_runtimes

RUNTIME_NAMES = load_runtimes().names()  # every registered runtime, artifact and trained-twin ones alike

pytestmark = pytest.mark.slow

TINY = FloorSettings(
    window=WindowPolicy(warmup_seconds=0.0, warmup_samples=2, min_seconds=0.0, min_samples=20, max_seconds=30.0),
    throughput_window=WindowPolicy(warmup_seconds=0.0, warmup_samples=1, min_seconds=0.0, min_samples=3,
                                   max_seconds=30.0),
    batch_sizes=(1, 8), thread_counts=(1,), repeats=1, grouping="family", parallel_processes=2,
    process_timeout_s=300.0, max_raw_samples=50)


@pytest.fixture(scope="module")
def floor(spine_run) -> FloorResults:
    result = measure(spine_run, ["mlp", "cnn"], TINY, "spine", "test", Console(stderr=True, quiet=True))
    results.save(result, spine_run.floor)
    return result


def _points(floor: FloorResults, runtime: str) -> list:
    return [p for p in floor.points if p.spec.runtime == runtime]


def test_every_point_measured(floor):
    failed = [(p.spec.label, p.error) for p in floor.points if not p.ok]
    assert not failed
    for p in floor.points:
        assert p.load_seconds is not None and p.first_inference_seconds is not None
        assert [b.batch for b in p.batches] == [1, 8]
        b1 = p.at(1)
        assert b1.calls >= 20 and b1.latency.stats["n"] == b1.calls and b1.latency.unit == "ms"
        assert b1.throughput == pytest.approx(b1.calls / b1.window_seconds)
        assert p.at(8).throughput == pytest.approx(8 * p.at(8).calls / p.at(8).window_seconds)
        # raw samples kept up to max_raw_samples, else an HDR histogram
        assert (len(b1.latency.samples) == b1.calls) != (b1.histogram is not None)
        assert p.cpus and len(p.cpus) == 1 and p.threads == 1
        assert p.peak_rss_bytes and p.peak_rss_bytes > 0


# spine_run has no AOTInductor packages: the aoti runtime's floor figures are checked on pt2_run (test_export_pt2.py)
@pytest.mark.parametrize("runtime", [n for n in RUNTIME_NAMES if n not in ("null", "aoti")])
def test_runtime_matches_reference(floor, runtime):
    points = _points(floor, runtime)
    assert points, f"no {runtime} point"
    for p in points:
        assert p.parity is not None and p.parity.n == 64
        if p.spec.variant == "fp32":
            assert p.parity.gated and p.parity.passed, p.parity.failure
            assert p.parity.max_abs_err <= 1e-4 and p.parity.top1_agreement == 1.0
        else:
            assert not p.parity.gated


def test_threads_recorded(floor):
    for runtime, key in (("keras-eager", "tf_intra_op_threads"), ("torch-eager", "torch_intra_op_threads"),
                         ("pytensor", "blas_threads")):
        for p in _points(floor, runtime):
            assert p.thread_settings[key] == 1
    assert all(p.env_threads["OMP_NUM_THREADS"] == "1" for p in floor.points)


def test_idle_policy_is_the_load_stages_and_recorded(floor):
    """The serving tax subtracts this floor from served figures: both under the load stage's idle policy."""
    assert floor.cpu_idle is not None and floor.cpu_idle.policy == "poll"
    assert floor.cpu_idle.note and floor.cpu_idle.idle_seconds is not None


def test_family_grouping_and_null(floor):
    frameworks = {p.spec.framework for p in floor.points}
    assert len(floor.processes) == len(frameworks)
    assert sum(proc.points for proc in floor.processes) == len(floor.points)
    # the first point of a process pays the framework import, the others do not
    for proc in floor.processes:
        members = sorted((p for p in floor.points if p.group == proc.group), key=lambda p: p.position_in_group)
        assert all(p.import_seconds is None for p in members[1:])
    null = _points(floor, "null")
    assert len(null) == 2 and all(p.parity is None for p in null)
    assert max(p.p50_ms for p in null) < min(p.p50_ms for p in _points(floor, "keras-eager"))
    # peak RSS is the measuring process's own (not the TensorFlow-laden parent's, which ru_maxrss would give)
    assert max(p.peak_rss_bytes for p in null) < min(p.peak_rss_bytes for p in _points(floor, "keras-eager")) / 2


def test_graph_row_and_theano_row(floor):
    pairs = {(r.twin, r.eager, r.graph) for r in floor.graph_ratios}
    # spine_run has no AOTInductor packages (compiled once per session in `pt2_run` instead)
    assert pairs == {(t, e, g) for t in ("mlp", "cnn") for _, e, g in graph_pairs() if g != "aoti"}
    for r in floor.graph_ratios:
        assert r.latency_ratio == pytest.approx(r.eager_p50_ms / r.graph_p50_ms)
        assert r.batch == 8 and r.throughput_ratio and r.throughput_ratio > 0
        # eager and graph side by side in one process: 8 paired rounds, the ratio the median of theirs
        assert r.paired is not None and r.paired.n == 8, r
        assert r.paired.a.startswith(f"{r.twin}/{r.eager}") and r.paired.b.startswith(f"{r.twin}/{r.graph}")
    assert floor.comparisons and all(c.n == 8 and c.load == "batch 1" for c in floor.comparisons)
    paired_points = [p for p in floor.points if p.round_p50_ms]
    assert paired_points and all(len(p.round_p50_ms) == 8 and p.ok for p in paired_points)
    row = floor.theano
    assert row.theano.what == "theano" and row.theano.reason.startswith("not tried in this profile (test")
    assert row.attempt is None and "--try-theano" in row.theano.enable_command
    assert row.deployment == {"export_format": "none", "server": "none"}
    assert row.twins == ["mlp"] and row.graph_compile_seconds["mlp"] > 0 and row.p50_ms["mlp"] > 0
    assert not floor.not_run  # every artifact format has a runtime; Theano's NotRun lives in its row
    assert floor.spread == []  # one repeat: no run-to-run spread


def test_round_trip(floor, spine_run):
    loaded = results.load(FloorResults, spine_run.floor)
    assert loaded == floor


def test_scope_leaves_points_out_as_not_run(spine_run):
    from deploy_compare.models.floor.plan import plan_points

    settings = FloorSettings(twins=("mlp",), exclude=("*/tflite/fp16", "*/keras-eager"))
    points, not_run = plan_points(spine_run, ["mlp", "cnn"], settings)
    labels = {p.label for p in points}
    assert all(p.twin == "mlp" for p in points) and "mlp/tflite/fp16" not in labels and "mlp/keras-eager" not in labels
    assert "mlp/torchscript/fp32" in labels
    missing = {n.what for n in not_run}
    assert {"floor/cnn", "floor/mlp/tflite/fp16", "floor/mlp/keras-eager"} <= missing
    assert all("--profile exhaustive" in n.enable_command for n in not_run)
