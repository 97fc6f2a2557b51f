"""The reference batch every parity check uses: `run_dir.heldout(name)`, one npz per model.

    x           the inputs, in the model's canonical layout (`layout`) and input dtype
    ref         the reference model's outputs on x (stored as `logits_ref`)
    y           labels, when the batch has them (a zoo twin's held-out split); absent for a user's model
    layout      the canonical layout of x (a zoo twin: its Keras layout; a user's model: "tensor")
    output_kind what the output means (core.kinds.OutputKind): which parity figures apply
    max_rel     relative tolerance of the gate for this output (absent: the gate's absolute bound alone)
    origin      where x came from: the held-out split, the user's sample file, or seeded random inputs

Written by the train stage (twins) and the model stage (a user's model); read by parity, the floor, the
served parity check and the load generator's payload. A batch written before `layout` was stored takes
its twin's Keras layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy_compare.core.kinds import OutputKind


@dataclass(frozen=True)
class HeldoutBatch:
    x: np.ndarray
    ref: np.ndarray
    layout: str
    y: np.ndarray | None = None
    output_kind: OutputKind = OutputKind.CLASS_LOGITS
    max_rel: float | None = None
    origin: str = "held-out split"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"x": self.x, "logits_ref": self.ref, "layout": np.array(self.layout),
                  "output_kind": np.array(str(self.output_kind)), "origin": np.array(self.origin)}
        if self.y is not None:
            arrays["y"] = self.y
        if self.max_rel is not None:
            arrays["max_rel"] = np.array(self.max_rel)
        np.savez(path, **arrays)

    def input_in(self, layout: str) -> np.ndarray:
        """x converted to `layout` (its own dtype kept)."""
        from deploy_compare.models.data import to_layout

        return to_layout(self.x, self.layout, layout)


def load_batch(path: Path, name: str) -> HeldoutBatch:
    """The reference batch of model `name` at `path` (`run_dir.heldout(name)`)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist; run the train stage (a zoo twin) or the model stage "
                                f"(`deploy-compare run --model`) for {name!r} first")
    with np.load(path) as npz:
        keys = set(npz.files)
        if "layout" in keys:
            layout = str(npz["layout"])
        else:  # written before the layout was stored: a zoo twin's held-out batch
            from deploy_compare.models.zoo import get_twin

            layout = get_twin(name).keras_layout
        return HeldoutBatch(
            x=npz["x"], ref=npz["logits_ref"], layout=layout, y=npz["y"] if "y" in keys else None,
            output_kind=OutputKind(str(npz["output_kind"])) if "output_kind" in keys else OutputKind.CLASS_LOGITS,
            max_rel=float(npz["max_rel"]) if "max_rel" in keys else None,
            origin=str(npz["origin"]) if "origin" in keys else "held-out split")
