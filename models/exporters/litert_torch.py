"""`litert-torch`: the PyTorch twin -> TFLite with Google's litert-torch (formerly ai-edge-torch), in its own venv
(it pulls jax and pins pydantic 2.11, the lock has 2.14; the venv gets the same torch 2.13.0 CPU wheel).

The venv's script (`venv_scripts/litert_torch_convert.py`) converts the twin's torch.export program: a dynamic
batch when litert-torch accepts it, else a fixed batch of 1, with litert-torch's refusal in the record's notes.
The input keeps the PyTorch layout (NCHW for images).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from deploy_compare.models.exporters.base import EXPORTERS, ArtifactRecord, ExportJob
from deploy_compare.models.exporters.converters import Converter
from deploy_compare.models.exporters.torch_export import export_program
from deploy_compare.models.venvs import VenvSpec

SCRIPT = Path(__file__).with_name("venv_scripts") / "litert_torch_convert.py"


@EXPORTERS.add
class LiteRtTorchExporter(Converter):
    name = "litert-torch"
    format = "tflite"
    source_framework = "pytorch"
    tools = ()
    venv = VenvSpec("litert-torch", ("litert-torch==0.10.0", "torch==2.13.0"))

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import torch

        started = time.perf_counter()
        venv = self.environment(job)
        out = job.out_dir / "litert-torch"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model.tflite"
        with tempfile.TemporaryDirectory(prefix="dc-litert-") as tmp:
            program = Path(tmp) / "program.pt2"
            torch.export.save(export_program(job), str(program))
            t0 = time.perf_counter()
            result = self.convert(venv, [str(SCRIPT), str(program), str(path), json.dumps(list(job.input_shape))],
                                  job)
        batch = ("dynamic batch" if result["dynamic_batch"] else
                 f"fixed batch 1 (litert-torch refused a dynamic batch: {result['dynamic_error']})")
        notes = (f"litert-torch on the torch.export program, {batch}; conversion {time.perf_counter() - t0:.1f} s; "
                 f"venv {'cached' if venv.cached else 'created'} ({venv.created_seconds:.0f} s to create)")
        return [self.converted_record(job, path, "fp32", started, notes, result["versions"])]
