"""An independent parity check: each artifact loaded by its own library's loader (no deploy_compare runtime), in a
fresh interpreter, on the twin's held-out batch; its figures must equal the stored parity.json figures.

    .venv/bin/python tests/independent.py RUN_DIR [EXPORTER ...]   # prints one line per artifact, exits 1 on a mismatch

Used by tests/test_export_pt2.py. The child imports only numpy and the artifact's library.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# argv: format, path, heldout.npz, layout ("NF" | "NCHW" | "NHWC"), keras layout of the held-out x
CHILD = """
import json, sys
import numpy as np
fmt, path, heldout, layout, ref_layout = sys.argv[1:6]
held = np.load(heldout)
x = held["x"].astype(np.float32)
if layout != ref_layout:  # the held-out batch is in the Keras layout (NHWC) and the artifact takes NCHW, or back
    x = x.transpose(0, 3, 1, 2) if layout == "NCHW" else x.transpose(0, 2, 3, 1)
x = np.array(x, order="C", copy=True)
if fmt in ("torch-export", "aoti"):
    import torch, torch._inductor
    model = torch.export.load(path).module() if fmt == "torch-export" else torch._inductor.aoti_load_package(path)
    with torch.inference_mode():
        logits = model(torch.from_numpy(x)).numpy()
elif fmt == "tflite":
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=path)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    rows = []
    step = len(x) if inp["shape_signature"][0] == -1 else 1
    for i in range(0, len(x), step):
        interp.resize_tensor_input(inp["index"], x[i:i + step].shape)
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x[i:i + step])
        interp.invoke()
        rows.append(interp.get_tensor(out["index"]).copy())
    logits = np.concatenate(rows)
elif fmt == "savedmodel":
    import tensorflow as tf
    fn = tf.saved_model.load(path).signatures["serving_default"]
    (name,) = fn.structured_input_signature[1]
    (logits,) = fn(**{name: tf.constant(x)}).values()
    logits = logits.numpy()
else:
    raise SystemExit(f"no independent loader for {fmt}")
logits, ref = logits.astype(np.float64), held["logits_ref"].astype(np.float64)
print(json.dumps({"max_abs_err": float(np.abs(logits - ref).max()),
                  "top1_agreement": float(np.mean(logits.argmax(-1) == ref.argmax(-1)))}))
"""
FORMATS = ("torch-export", "aoti", "tflite", "savedmodel")


def independent_figures(run: Path, rec, keras_layout: str, timeout: float = 300.0) -> dict:
    """Max abs error and top-1 agreement of `rec` (an ArtifactRecord) computed by its library in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, rec.format, str(run / rec.path),
                          str(run / "data" / f"{rec.twin}_heldout.npz"), rec.layout, keras_layout],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{rec.key}: the independent check exited {out.returncode}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check(run: Path, exporters: tuple[str, ...]) -> list[tuple[str, dict, dict]]:
    """(artifact key, independent figures, stored figures) of every artifact of `exporters` in the run."""
    from deploy_compare.core import results
    from deploy_compare.models.exporters.base import Manifest
    from deploy_compare.models.parity import ParityReport
    from deploy_compare.models.zoo import get_twin

    manifest = results.load(Manifest, run / "manifest.json")
    stored = {r.artifact: r.figures for r in results.load(ParityReport, run / "parity.json").rows}
    out = []
    for rec in manifest.artifacts:
        if rec.exporter in exporters and rec.format in FORMATS:
            got = independent_figures(run, rec, get_twin(rec.twin).keras_layout)
            f = stored[rec.key]
            out.append((rec.key, got, {"max_abs_err": f.max_abs_err, "top1_agreement": f.top1_agreement}))
    return out


def agrees(got: dict, stored: dict) -> bool:
    return abs(got["max_abs_err"] - stored["max_abs_err"]) <= 1e-7 and got["top1_agreement"] == stored["top1_agreement"]


if __name__ == "__main__":
    run_dir = Path(sys.argv[1])
    wanted = tuple(sys.argv[2:]) or ("torch-export", "aoti", "litert-torch", "onnx2tf-savedmodel", "onnx2tf-tflite")
    rows = check(run_dir, wanted)
    for key, got, stored in rows:
        print(f"{key}: independent {got} stored {stored} -> {'agree' if agrees(got, stored) else 'DIFFER'}")
    raise SystemExit(0 if rows and all(agrees(g, s) for _, g, s in rows) else 1)
