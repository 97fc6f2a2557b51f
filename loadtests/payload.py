"""Request payloads from real data, never random noise.

A payload source is either a run folder (the twin's held-out batch, `RunDir.heldout(twin)`, x in the
canonical = Keras layout) or a user's `.npy` / `.npz` file (`x` array, or the only array). The batch is
converted to the endpoint's layout with `deploy_compare.models.data.to_layout`, and request bodies are serialized
once, before the load starts, so the generator only sends bytes:

- REST: JSON `{"instances": [...]}` (the TF Serving row format; TorchServe handlers of this project
  accept the same body), encoded as the serving clients encode it (`deploy_compare.serving.clients.rest.request_body`).
- gRPC: the official protobuf messages (`deploy_compare.loadtests.requests.wire_requests`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Payload:
    x: np.ndarray  # float32 (integer token ids stay integers), already in the endpoint's layout
    source: str  # where it came from (for the record)
    layout: str
    batch_size: int

    def batches(self, limit: int = 64) -> list[np.ndarray]:
        """Up to `limit` distinct request batches cycling through the rows."""
        n = self.x.shape[0]
        count = max(1, min(limit, n // self.batch_size or 1))
        out = []
        for i in range(count):
            idx = [(i * self.batch_size + j) % n for j in range(self.batch_size)]
            out.append(np.ascontiguousarray(self.x[idx]))
        return out

    def rest_bodies(self, limit: int = 64) -> list[bytes]:
        from deploy_compare.serving.clients.rest import request_body

        return [request_body(b) for b in self.batches(limit)]

    def describe(self) -> dict:
        sample = self.rest_bodies(1)[0]
        return {"source": self.source, "layout": self.layout, "batch_size": self.batch_size,
                "sample_shape": list(self.x.shape[1:]), "dtype": self.x.dtype.name,
                "rest_body_bytes": len(sample),
                "encoding": "json instances (REST; TorchServe gRPC input data), float32 TensorProto (TF Serving gRPC)"}


def load_inputs(source: str | Path, twin: str | None = None) -> tuple[np.ndarray, str]:
    """(x, description) from a run folder (needs `twin`) or a .npy/.npz file."""
    path = Path(source)
    if path.is_dir():
        from deploy_compare.core.rundir import RunDir

        if not twin:
            raise ValueError(f"payload {path} is a run folder: say which twin's held-out batch to send (--twin)")
        path = RunDir(path).heldout(twin)
        if not path.exists():
            raise FileNotFoundError(f"no held-out batch {path}: run the train stage for twin {twin!r} first")
    if not path.exists():
        raise FileNotFoundError(f"payload file {path} does not exist")
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "x" in data.files:
                x = data["x"]
            elif len(data.files) == 1:
                x = data[data.files[0]]
            else:
                raise ValueError(f"{path} holds {data.files}: name the input array `x`")
    else:
        raise ValueError(f"payload {path}: expected a run folder, a .npy or a .npz file")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"payload {path}: expected a batch (N, ...) with N >= 1, got shape {x.shape}")
    return np.asarray(x, dtype=x.dtype if x.dtype.kind in "iu" else np.float32), str(path)  # token ids stay ints


def build_payload(source: str | Path, *, twin: str | None = None, layout: str | None = None,
                  source_layout: str | None = None, batch_size: int = 1) -> Payload:
    """Load inputs and convert them to the endpoint's `layout`.

    `source_layout` defaults to the twin's canonical (Keras) layout for a run folder, and to `layout`
    (no conversion) for a user's file.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    x, desc = load_inputs(source, twin)
    if source_layout is None and Path(source).is_dir() and twin:
        from deploy_compare.core.rundir import RunDir
        from deploy_compare.models.heldout import load_batch

        source_layout = load_batch(RunDir(Path(source)).heldout(twin), twin).layout
    target = layout or source_layout
    if source_layout and target and source_layout != target:
        from deploy_compare.models.data import to_layout

        x = to_layout(x, source_layout, target)
    return Payload(x=np.ascontiguousarray(x), source=desc, layout=target or "as-is",
                   batch_size=batch_size)
