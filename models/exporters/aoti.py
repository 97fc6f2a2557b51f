"""`aoti`: the PyTorch twin compiled ahead of time by AOTInductor into a package (`.pt2` holding a shared library,
its kernels' C++ source and the weights), loaded with `torch._inductor.aoti_load_package`, without the Python
graph at run time.

A compile takes tens of seconds per model here (g++ on the generated C++), so:
- it runs in a fresh process (`core.proc.run_isolated`, bounded by `COMPILE_TIMEOUT_S`, log in `logs/`), so
  Inductor's global state and compiler threads stay out of the export stage's process;
- it is cached by content in the run folder (`cache/aoti/<key>/`): the key hashes the exported program's
  content, the torch version and the compile settings, so a re-export of the same weights reuses it.
The compile's seconds are a recorded figure (`ArtifactRecord.compile_seconds`, the first compile's when the
package came from the cache, with `compile_cached`).

Inductor fixes the parallelism of the loops it generates at compile time (from torch's thread count then):
packages are compiled at `COMPILE_THREADS` = 1, the thread count the servers and the floor's 1-thread points
run with; the record's notes say so. The declared signature travels inside the package as AOTI metadata
(`aot_inductor.metadata`, read back by `deploy-compare inspect`), since the package stores no tensor shapes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from deploy_compare.models.exporters.base import EXPORTERS, ArtifactRecord, ExportJob
from deploy_compare.models.exporters.torch_export import ExportedProgramExporter, export_program, program_digest
from deploy_compare.models.exporters.torchscript import declared_signature

COMPILE_THREADS = 1
COMPILE_TIMEOUT_S = 900.0
PACKAGE_FILE = "model.pt2"
SIGNATURE_KEY = "deploy_compare.signature"  # AOTI metadata key of the declared signature (JSON)
CACHE_RECORD = "compile.json"


def cache_key(program: Path, threads: int) -> str:
    import torch

    h = hashlib.sha256(program_digest(program).encode())
    h.update(json.dumps({"torch": torch.__version__, "threads": threads, "device": "cpu"}, sort_keys=True).encode())
    return h.hexdigest()[:20]


def compile_package(payload: dict[str, Any]) -> dict[str, Any]:
    """Child-process entry (`run_isolated`): load the saved program, compile and package it; seconds taken."""
    import torch

    torch.set_num_threads(int(payload["threads"]))
    program = torch.export.load(payload["program"])
    t0 = time.perf_counter()
    torch._inductor.aoti_compile_and_package(
        program, package_path=payload["package"],
        inductor_configs={"aot_inductor.metadata": {SIGNATURE_KEY: payload["signature"]}})
    return {"compile_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}


def compiled(job: ExportJob, program: Path, signature: str) -> tuple[Path, dict[str, Any], bool]:
    """The package for `program` from the run's cache, compiling it (in a fresh process) when absent.
    Returns its path, its compile record and whether it came from the cache."""
    from deploy_compare.core.proc import run_isolated

    entry = job.run_root / "cache" / "aoti" / cache_key(program, COMPILE_THREADS)
    package, record_file = entry / PACKAGE_FILE, entry / CACHE_RECORD
    if package.is_file() and record_file.is_file():
        return package, json.loads(record_file.read_text()), True
    entry.mkdir(parents=True, exist_ok=True)
    log = job.run_root / "logs" / f"aoti-compile-{job.twin}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    partial = entry / f"partial-{PACKAGE_FILE}"
    result = run_isolated("deploy_compare.models.exporters.aoti:compile_package",
                          {"program": str(program), "package": str(partial), "threads": COMPILE_THREADS,
                           "signature": signature}, timeout=COMPILE_TIMEOUT_S, log_path=log)
    partial.replace(package)  # only a finished compile enters the cache
    record_file.write_text(json.dumps(result))
    return package, result, False


@EXPORTERS.add
class AotiExporter(ExportedProgramExporter):
    name = "aoti"
    format = "aoti"

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import torch

        started = time.perf_counter()
        program = export_program(job)
        with torch.no_grad():
            output_shape = tuple(program.module()(torch.from_numpy(job.example(2, seed=0))).shape[1:])
        signature = json.dumps(declared_signature(job, output_shape))
        with tempfile.TemporaryDirectory(prefix="dc-aoti-") as tmp:
            saved = Path(tmp) / "program.pt2"
            torch.export.save(program, str(saved))
            package, compile_record, cached = compiled(job, saved, signature)
        out = job.out_dir / "aoti"
        out.mkdir(parents=True, exist_ok=True)
        path = out / PACKAGE_FILE
        shutil.copyfile(package, path)
        seconds = round(float(compile_record["compile_seconds"]), 2)
        rec = self.record(job, path, "fp32", started, notes=(
            f"torch.export (dynamic batch) + torch._inductor.aoti_compile_and_package for CPU, compiled at "
            f"{COMPILE_THREADS} thread in a fresh process in {seconds:.1f} s"
            + (f" (package reused from {package.parent.relative_to(job.run_root)})" if cached else "")))
        rec.compile_seconds = seconds
        rec.compile_cached = cached
        return [rec]
