"""Exporters: every twin of the spine run in every format, a manifest that round-trips and tells the truth
(sha256 and size of the file on disk), and artifacts that load in their runtime with a dynamic batch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deploy_compare.core import results
from deploy_compare.models.exporters.base import Manifest, digest, load_exporters
from deploy_compare.models.exporters.stage import load_manifest

EXPECTED = {("savedmodel", "fp32"), ("tflite", "fp32"), ("tflite", "int8-dynamic"), ("tflite", "fp16"),
            ("torchscript", "fp32"), ("torch-export", "fp32"), ("onnx-torch", "fp32")}
# left out of spine_run by its export scope (tests/conftest.py): recorded as NotRun
LEFT_OUT = ("aoti", "litert-torch", "onnx2tf-savedmodel", "onnx2tf-tflite")


@pytest.mark.slow
def test_every_twin_exported_in_every_format(spine_run):
    manifest = load_manifest(spine_run)
    assert load_exporters().names() == ["savedmodel", "tflite", "torchscript", "torch-export", "aoti", "onnx-torch",
                                        "onnx-tf", "litert-torch", "onnx2tf-savedmodel", "onnx2tf-tflite"]
    for twin in ("mlp", "cnn"):
        got = {(r.exporter, r.variant) for r in manifest.artifacts if r.twin == twin}
        assert EXPECTED <= got, f"{twin}: missing {EXPECTED - got}"
        # ONNX from TensorFlow is either exported or recorded as not run, with its reason
        onnx_tf = ("onnx-tf", "fp32") in got
        not_run = [n for n in manifest.not_run if n.what == f"{twin}/onnx-tf"]
        assert onnx_tf != bool(not_run) and all(n.reason for n in not_run)
        left_out = {n.what: n for n in manifest.not_run if n.what.split("/")[1] in LEFT_OUT and n.what.startswith(twin)}
        assert set(left_out) == {f"{twin}/{e}" for e in LEFT_OUT}
        assert all("ExportSettings.exclude" in n.reason for n in left_out.values())


@pytest.mark.slow
def test_manifest_round_trip_and_records_match_files(spine_run, tmp_path):
    manifest = load_manifest(spine_run)
    copy = results.load(Manifest, results.save(manifest, tmp_path / "manifest.json"))
    assert copy == manifest
    for rec in manifest.artifacts:
        assert digest(spine_run.path / rec.path) == (rec.sha256, rec.bytes), rec.key
        assert rec.dynamic_batch and [s.name for s in rec.inputs] == ["input"], rec.key
        assert rec.outputs[0].shape == [None, 10], rec.key
        if rec.format != "torch-export":  # a program's output is named after its graph node (e.g. linear_1)
            assert [s.name for s in rec.outputs] == ["logits"], rec.key
        assert rec.export_seconds > 0 and rec.tool_versions, rec.key
    cnn = {r.source_framework: r for r in manifest.artifacts if r.twin == "cnn" and r.format == "onnx"}
    assert cnn["pytorch"].layout == "NCHW" and cnn["pytorch"].inputs[0].shape == [None, 1, 8, 8]
    if "tensorflow" in cnn:
        assert cnn["tensorflow"].layout == "NHWC" and cnn["tensorflow"].inputs[0].shape == [None, 8, 8, 1]


def predict_batches(payload: dict) -> dict:
    """Child process: every artifact of a twin, loaded by its runtime, at several batch sizes."""
    from pathlib import Path

    from deploy_compare.models.exporters.base import ArtifactRecord
    from deploy_compare.models.runtimes.base import open_artifact

    out = {}
    for data in payload["records"]:
        rec = results.from_json_data(ArtifactRecord, data)
        runtime = open_artifact(rec, Path(payload["run_root"]), threads=1)
        assert runtime.capabilities().layout == rec.layout
        shape = [int(d) for d in rec.inputs[0].shape[1:]]
        out[rec.key] = [list(runtime.predict(np.zeros((n, *shape), np.float32)).shape)
                        for n in payload["batches"]]
    return out


@pytest.mark.slow
def test_artifacts_load_in_their_runtime_with_dynamic_batch(spine_run):
    from deploy_compare.core.proc import run_isolated

    records = [r for r in load_manifest(spine_run).artifacts if r.twin == "cnn"]
    shapes = run_isolated("tests.test_export_artifacts:predict_batches", {
        "run_root": str(spine_run.path), "batches": [1, 3, 1],
        "records": results.to_json_data(records, list[type(records[0])])}, timeout=240)
    assert set(shapes) == {r.key for r in records}
    for key, got in shapes.items():
        assert got == [[1, 10], [3, 10], [1, 10]], key


class _Failing:
    name, optional, enable_command = "broken", False, ""

    def export(self, job):
        raise RuntimeError("converter exploded")


def test_failing_exporter_fails_by_name_unless_optional(tmp_path):
    from deploy_compare.models.exporters.base import ExportJob
    from deploy_compare.models.exporters.stage import ExportFailed, run_exporter

    job = ExportJob(twin="mlp", model=None, input_shape=(64,), layout="NF", out_dir=tmp_path, run_root=tmp_path)
    manifest = Manifest(run_id="t")
    with pytest.raises(ExportFailed, match=r"exporter broken failed on twin 'mlp': RuntimeError: converter exploded"):
        run_exporter(_Failing(), job, manifest)
    optional = _Failing()
    optional.optional, optional.enable_command = True, "pip install a-better-converter"
    run_exporter(optional, job, manifest)
    assert manifest.artifacts == [] and [(n.what, n.reason, n.enable_command) for n in manifest.not_run] == [
        ("mlp/broken", "RuntimeError: converter exploded", "pip install a-better-converter")]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../other-run/artifacts/mlp/onnx/model.onnx", ""])
def test_manifest_paths_must_stay_inside_the_run_folder(spine_run, tmp_path, bad):
    data = json.loads(spine_run.manifest.read_text())
    data["artifacts"][0]["path"] = bad
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="inside"):
        results.load(Manifest, tmp_path / "manifest.json")
