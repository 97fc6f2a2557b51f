"""Run by the litert-torch venv: PROGRAM.pt2 (a torch.export program of the twin) -> OUT.tflite.

    python litert_torch_convert.py PROGRAM OUT SAMPLE_SHAPE_JSON

Tries a dynamic batch first (`dynamic_shapes`, a torch.export.Dim); when litert-torch refuses it, converts at a
fixed batch of 1 and reports the refusal. Prints one JSON line: dynamic_batch, dynamic_error, seconds, versions.
"""
import importlib.metadata
import json
import sys
import time

import litert_torch
import torch


def main(program: str, out: str, shape: list[int]) -> dict:
    t0 = time.perf_counter()
    module = torch.export.load(program).module()
    sample = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    dynamic_error = ""
    try:
        edge = litert_torch.convert(module, (sample,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as exc:  # reported: the fixed-batch conversion below is recorded as such
        dynamic_error = f"{type(exc).__name__}: {str(exc)[:400]}"
        edge = litert_torch.convert(module, (sample[:1],))
    edge.export(out)
    return {"dynamic_batch": not dynamic_error, "dynamic_error": dynamic_error, "seconds": time.perf_counter() - t0,
            "versions": {d: importlib.metadata.version(d) for d in ("litert-torch", "torch", "ai-edge-litert")}}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
