"""The computing twins (`mobilenet`, `transformer`): trained (or labelled untrained), transplanted, FLOPs
counted, exported to every format with the parity gate passing; token ids (int64) through every exporter."""
from __future__ import annotations

from dataclasses import replace

import pytest

COMPUTING = ("mobilenet", "transformer")


@pytest.fixture(scope="module")
def compute_run(tmp_path_factory):
    from rich.progress import Progress

    from deploy_compare.core import results
    from deploy_compare.core.config import CONVERTERS, ExportSettings, TrainSettings
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.exporters.base import Manifest
    from deploy_compare.models.exporters.stage import export_twin
    from deploy_compare.models.training import TwinRecord, configure_threads, train_twin

    run_dir = RunDir(tmp_path_factory.mktemp("compute") / "run").create()
    settings = replace(TrainSettings(twins=COMPUTING), twin_epochs=(("transformer", 2),))
    threads = configure_threads(1)
    with Progress(disable=True) as progress:
        records = [train_twin(name, settings, run_dir, threads, progress) for name in COMPUTING]
    results.save(records, run_dir.models, list[TwinRecord])
    manifest = Manifest(run_id="compute")
    # no AOTInductor compiles (tens of seconds each) and no converter venvs (minutes to create on a fresh machine)
    scope = ExportSettings(exclude=("*/aoti", *CONVERTERS))
    for name in COMPUTING:
        export_twin(run_dir, name, manifest, scope)
    results.save(manifest, run_dir.manifest)
    return run_dir, {r.twin: r for r in records}, manifest


@pytest.mark.slow
def test_computing_twins_are_recorded_with_their_flops(compute_run):
    _, records, _ = compute_run
    mobilenet, transformer = records["mobilenet"], records["transformer"]
    assert 100e6 < mobilenet.flops < 1e9 and mobilenet.untrained and mobilenet.epochs == 0
    # 16.8 M counted: projections and MLP; torch's counter does not see CPU's fused attention (flops.py)
    assert 10e6 < transformer.flops < 40e6 and not transformer.untrained
    print({name: (r.flops, r.accuracy_keras, r.accuracy_torch_native, r.train_seconds_keras, r.train_seconds_torch)
           for name, r in records.items()})
    assert transformer.accuracy_keras > 0.3 and transformer.accuracy_torch_native > 0.2  # chance: 0.1
    for r in records.values():
        assert r.transplant_max_abs_diff <= 1e-4 and r.transplant_top1_agreement == 1.0


@pytest.mark.slow
def test_computing_twins_pass_parity_in_every_format(compute_run):
    from deploy_compare.models.parity import check

    run_dir, _, manifest = compute_run
    formats = {(a.twin, a.format) for a in manifest.artifacts}
    for twin in COMPUTING:
        assert {f for t, f in formats if t == twin} >= {"savedmodel", "tflite", "torchscript", "onnx"}
    ids = [a for a in manifest.artifacts if a.twin == "transformer"]
    assert all(a.inputs[0].dtype == "int64" for a in ids), [(a.key, a.inputs[0].dtype) for a in ids]
    report = check(run_dir, manifest)
    failed = [(r.artifact, r.problem()) for r in report.rows if not r.ok]
    assert not failed
