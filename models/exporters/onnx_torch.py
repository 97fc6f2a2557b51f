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

from models.exporters.base import EXPORTERS, INPUT_NAME, OUTPUT_NAME, ArtifactRecord, Exporter, ExportJob

OPSET = 18


@EXPORTERS.add
class OnnxFromTorchExporter(Exporter):
    name = "onnx-torch"
    format = "onnx"
    source_framework = "pytorch"
    tools = ("torch", "onnx", "onnxscript")

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import torch

        started = time.perf_counter()
        example = torch.rand(2, *job.input_shape, generator=torch.Generator().manual_seed(0))
        out = job.out_dir / "onnx"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model_torch.onnx"
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
        return [self.record(job, path, "fp32", started, notes=f"torch.onnx.export dynamo=True, opset {OPSET}")]
