"""The parity gate: figures, the gate's verdicts, and a perturbed artifact failing the pipeline by name."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from deploy_compare.core import results
from deploy_compare.models.parity import ParityFailed, ParityTolerance, compare, load_report

TOL = ParityTolerance()


def _batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(32, 10)).astype(np.float32)
    return ref, ref.argmax(axis=1)


def test_identical_logits_pass():
    ref, y = _batch()
    f = compare(ref.copy(), ref, y, TOL)
    assert f.passed and f.gated and f.max_abs_err == 0 and f.top1_agreement == 1 and f.accuracy == 1


def test_error_above_tolerance_fails_with_the_figure():
    ref, y = _batch()
    f = compare(ref + 2e-4, ref, y, TOL)
    assert not f.passed and "max abs error 2.0" in f.failure and f.top1_agreement == 1
    assert f.max_rel_err == pytest.approx(2e-4 / np.abs(ref).max(), rel=1e-3)


def test_top1_disagreement_fails_even_within_abs_tolerance():
    ref = np.zeros((4, 3), np.float32)
    ref[:, 0] = 1e-5  # argmax 0, by a hair
    other = ref.copy()
    other[0, 1] = 2e-5  # within 1e-4 but flips sample 0
    f = compare(other, ref, np.zeros(4, np.int64), TOL)
    assert not f.passed and "top-1 agreement 75.00%" in f.failure


def test_nan_fails_and_quantized_is_reported_not_gated():
    ref, y = _batch()
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert not compare(bad, ref, y, TOL).passed
    reported = compare(ref + 0.5, ref, y, None)
    assert reported.passed and not reported.gated and reported.max_abs_err == pytest.approx(0.5)


@pytest.mark.slow
def test_spine_run_parity_rows(spine_run):
    from deploy_compare.models.exporters.stage import load_manifest

    report = load_report(spine_run)
    manifest = load_manifest(spine_run)
    assert [r.artifact for r in report.rows] == [a.key for a in manifest.artifacts]
    for row in report.rows:
        assert row.ok, (row.artifact, row.problem())
        assert row.figures.gated == (row.variant == "fp32"), row.artifact
        if row.figures.gated:
            assert row.figures.max_abs_err <= 1e-4 and row.figures.top1_agreement == 1.0


@pytest.mark.slow
def test_perturbed_or_broken_artifacts_fail_the_gate_by_name(spine_run, tmp_path):
    import onnx
    from onnx import numpy_helper

    from deploy_compare.app.pipeline import RunContext, run_pipeline
    from deploy_compare.core.config import QUICK, RunConfig
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.exporters.base import Manifest
    from deploy_compare.models.exporters.stage import load_manifest

    run_dir = RunDir(tmp_path / "perturbed")
    shutil.copytree(spine_run.path, run_dir.path)
    manifest = load_manifest(run_dir)
    target = manifest.find("cnn", "onnx", framework="pytorch")
    healthy = manifest.find("mlp", "onnx", framework="pytorch")
    model = onnx.load(str(run_dir.path / target.path))
    weights = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the largest weight tensor
    array = numpy_helper.to_array(weights).copy()
    array.flat[0] += 0.5
    weights.CopyFrom(numpy_helper.from_array(array, weights.name))
    onnx.save(model, str(run_dir.path / target.path))
    broken = manifest.find("mlp", "tflite", variant="fp16")  # quantized: not gated, but it must load and run
    (run_dir.path / broken.path).write_bytes((run_dir.path / broken.path).read_bytes()[:2000])
    results.save(Manifest(run_id=manifest.run_id, artifacts=[healthy, target, broken]), run_dir.manifest)

    config = RunConfig(profile=QUICK, run_id="perturbed", results_root=tmp_path, stages=("parity",))
    with pytest.raises(ParityFailed, match=r"cnn/onnx-torch/fp32 .*max abs error") as info:
        run_pipeline(RunContext(config=config, run_dir=run_dir))
    assert "mlp/onnx-torch/fp32" not in str(info.value) and "mlp/tflite/fp16" in str(info.value)
    rows = {row.artifact: row for row in load_report(run_dir).rows}  # saved before failing, every row
    assert rows["mlp/onnx-torch/fp32"].ok and not rows["cnn/onnx-torch/fp32"].ok
    assert rows["mlp/tflite/fp16"].error and rows["mlp/tflite/fp16"].runtime == "tflite"
    assert "mlp/tflite/fp16 failed" in (run_dir.logs / "parity-tflite.log").read_text()
