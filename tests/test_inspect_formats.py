"""`deploy-compare inspect`: each format detected by content and described."""
from __future__ import annotations

import pytest

from deploy_compare.app.cli import main as cli_main
from deploy_compare.models.inspect import UnknownArtifact, detect_format, inspect_artifact

pytestmark = pytest.mark.slow

FORMATS = ("savedmodel", "tflite", "torchscript", "onnx", "torch-export")  # AOTI: tests/test_export_pt2.py


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_each_format(spine_run, fmt):
    from deploy_compare.models.exporters.stage import load_manifest

    rec = load_manifest(spine_run).find("cnn", fmt)
    info = inspect_artifact(spine_run.path / rec.path)
    assert info.format == fmt
    assert (info.sha256, info.bytes) == (rec.sha256, rec.bytes)
    assert [(s.name, s.shape, s.dtype) for s in info.inputs] == [("input", rec.inputs[0].shape, "float32")]
    assert info.outputs[0].shape == [None, 10] and info.op_counts
    assert (info.opset == 18) if fmt == "onnx" else info.opset is None
    assert any("conv" in op.lower() for op in info.op_counts), info.op_counts


def test_cli_prints_signature_and_fails_clearly_on_unknown(spine_run, tmp_path, capsys):
    from deploy_compare.models.exporters.stage import load_manifest

    rec = load_manifest(spine_run).find("mlp", "tflite", variant="int8-dynamic")
    assert cli_main(["inspect", str(spine_run.path / rec.path)]) == 0
    out = capsys.readouterr().out
    assert rec.sha256 in out and "input" in out and "[batch, 64]" in out and "FULLY_CONNECTED" in out
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"not a model")
    with pytest.raises(UnknownArtifact):
        detect_format(junk)
    assert cli_main(["inspect", str(junk)]) == 2
    assert "not a recognised artifact" in capsys.readouterr().err


def test_inspect_stage_summarizes_every_manifest_artifact(spine_run):
    from deploy_compare.core import results
    from deploy_compare.core.config import QUICK, RunConfig
    from deploy_compare.core.context import RunContext
    from deploy_compare.models.exporters.stage import load_manifest
    from deploy_compare.models.inspect import ArtifactInfo, run_stage

    ctx = RunContext(config=RunConfig(profile=QUICK, run_id="spine", results_root=spine_run.path.parent),
                     run_dir=spine_run)
    run_stage(ctx)
    infos = results.load(list[ArtifactInfo], spine_run.inspect)
    manifest = load_manifest(spine_run)
    assert [i.path for i in infos] == [a.path for a in manifest.artifacts]
    assert all(i.op_counts for i in infos)
    assert all(i.opset for i in infos if i.format == "onnx")
