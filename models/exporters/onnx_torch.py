"""ONNX from PyTorch with the torch.export-based exporter (`torch.onnx.export(..., dynamo=True)`), opset 18.

Why: since PyTorch 2.9 this exporter is the default and the maintained one; the TorchScript-based
exporter (`dynamo=False`) warns that it will be removed. Opset 18 is the exporter's native opset
(its op library targets it; onnxruntime 1.32 runs it). The batch axis is a `torch.export.Dim`, so the
graph input is `input[batch, ...]`, output `logits[batch, classes]`.
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

from deploy_compare.models.exporters.base import EXPORTERS, INPUT_NAME, OUTPUT_NAME, ArtifactRecord, Exporter, ExportJob

OPSET = 18


def write_onnx(job: ExportJob, path: Path) -> Path:
    """The PyTorch twin as ONNX at `path` (dynamic batch, opset `OPSET`); also the input of `onnx2tf`."""
    import torch

    example = torch.from_numpy(job.example(2, seed=0))
    # The exporter prints progress lines to stdout and logs that optional torchvision ops are skipped;
    # torch's pytree FutureWarning is about torch internals. Keep the stage output to our progress bar.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        program = torch.onnx.export(
            job.model.eval(), (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, opset_version=OPSET,
            external_data=False)
    program.save(str(path), external_data=False)
    return path


@EXPORTERS.add
class OnnxFromTorchExporter(Exporter):
    name = "onnx-torch"
    format = "onnx"
    source_framework = "pytorch"
    tools = ("torch", "onnx", "onnxscript")

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        started = time.perf_counter()
        out = job.out_dir / "onnx"
        out.mkdir(parents=True, exist_ok=True)
        path = write_onnx(job, out / "model_torch.onnx")
        return [self.record(job, path, "fp32", started, notes=f"torch.onnx.export dynamo=True, opset {OPSET}")]
