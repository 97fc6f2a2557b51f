"""TorchScript by tracing (`torch.jit.trace`), not scripting.

Why trace: the twins are static feed-forward graphs (no data-dependent control flow), so a trace
records exactly the ops that run, and it works on any `nn.Module` the zoo defines without the
TorchScript type annotations `torch.jit.script` demands. Its one risk, a shape frozen into the graph,
is checked: the trace is taken at batch 2 and verified at batch 5 (`check_inputs`), so a batch-size
constant would fail the export. TorchScript files store no input shapes; the declared signature is
saved inside the file as the extra file `signature.json` (read by `deploy-compare inspect`).
"""
from __future__ import annotations

import json
import time

from deploy_compare.core.results import to_json_data
from deploy_compare.models.exporters.base import (
    EXPORTERS,
    INPUT_NAME,
    OUTPUT_NAME,
    ArtifactRecord,
    Exporter,
    ExportJob,
    TensorSpec,
)

SIGNATURE_FILE = "signature.json"


def declared_signature(job: ExportJob, output_shape: tuple[int, ...]) -> dict:
    """The signature stored in the file; `output_shape` is per sample."""
    spec = {"inputs": [TensorSpec(INPUT_NAME, [None, *job.input_shape], job.input_dtype)],
            "outputs": [TensorSpec(OUTPUT_NAME, [None, *output_shape], "float32")]}
    return {k: to_json_data(v, list[TensorSpec]) for k, v in spec.items()}


@EXPORTERS.add
class TorchScriptExporter(Exporter):
    name = "torchscript"
    format = "torchscript"
    source_framework = "pytorch"
    tools = ("torch",)

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import torch

        started = time.perf_counter()
        model = job.model.eval()
        example = torch.from_numpy(job.example(2, seed=0))
        check = torch.from_numpy(job.example(5, seed=1))
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_inputs=[(check,)])
            output_shape = tuple(int(d) for d in traced(example).shape[1:])
        out = job.out_dir / "torchscript"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model.pt"
        torch.jit.save(traced, str(path),
                       _extra_files={SIGNATURE_FILE: json.dumps(declared_signature(job, output_shape))})
        return [self.record(job, path, "fp32", started, notes="torch.jit.trace, checked at batch 5")]
