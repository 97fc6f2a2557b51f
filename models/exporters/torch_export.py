"""`torch-export`: the PyTorch twin as a `torch.export` ExportedProgram, saved with `torch.export.save` (`.pt2`).

Why torch.export: it is PyTorch's maintained path to a whole-graph artifact (TorchScript, `torch.jit`, is
deprecated), the input of AOTInductor (`aoti.py`) and of the ONNX exporter (`onnx_torch.py`). The batch
axis is a `torch.export.Dim`; the example batch is 2, because torch.export specializes a dimension whose
example size is 0 or 1 into a constant (a batch-1 example would freeze the batch at 1). The program still
answers a batch of 1 (checked by the parity gate and the floor, which call it at batch 1).
The signature in the record is read back from the saved program's graph (`deploy_compare.models.inspect`).
"""
from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path
from typing import Any

from deploy_compare.models.exporters.base import EXPORTERS, ArtifactRecord, Exporter, ExportJob

EXAMPLE_BATCH = 2  # >= 2: an example dimension of size 0 or 1 is specialized into a constant
PROGRAM_FILE = "model.pt2"
# a fresh id per `torch.export.save`: left out of a program's content hash
_VOLATILE_MEMBERS = (".data/serialization_id",)


def export_program(job: ExportJob) -> Any:
    """`torch.export.export` of the twin with a dynamic batch dimension (an ExportedProgram)."""
    import torch

    example = torch.from_numpy(job.example(EXAMPLE_BATCH, seed=0))
    with torch.no_grad():
        return torch.export.export(job.model.eval(), (example,),
                                   dynamic_shapes=({0: torch.export.Dim("batch")},), strict=False)


def program_digest(path: Path) -> str:
    """sha256 of a saved program's content (member names and bytes, in name order) without the per-save id,
    so two saves of the same program hash alike."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith(_VOLATILE_MEMBERS):
                continue
            h.update(name.split("/", 1)[-1].encode() + b"\0" + zf.read(name))
    return h.hexdigest()


class ExportedProgramExporter(Exporter):
    """What the exporters that start from the twin's `torch.export` program share (this one and AOTI's)."""
    source_framework = "pytorch"
    tools = ("torch",)
    optional = True  # a twin torch.export cannot capture is a NotRun with the real error, not a failed run
    enable_command = "see the NotRun's error: torch.export needs a graph without data-dependent Python control flow"


@EXPORTERS.add
class TorchExportExporter(ExportedProgramExporter):
    name = "torch-export"
    format = "torch-export"

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import torch

        started = time.perf_counter()
        program = export_program(job)
        out = job.out_dir / "torch-export"
        out.mkdir(parents=True, exist_ok=True)
        path = out / PROGRAM_FILE
        torch.export.save(program, str(path))
        return [self.record(job, path, "fp32", started,
                            notes=f"torch.export.export, dynamic batch (Dim), example batch {EXAMPLE_BATCH}")]
