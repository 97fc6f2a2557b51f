"""Trained twins as eager runtimes see them: the folder `run_dir.twin_dir(twin)` written by the train stage.

`deploy_compare.models.training.load_trained` loads both frameworks; an eager runtime loads only its own framework's
model, so a PyTorch process never imports TensorFlow (nor the reverse) and its load time and memory stay
its own. Files and their meaning are those of `deploy_compare.models.training` (KERAS_FILE, TORCH_FILE).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from deploy_compare.core.rundir import RunDir
from deploy_compare.models.runtimes.base import Capabilities, Runtime
from deploy_compare.models.zoo import Twin, get_twin


class TwinRuntime(Runtime):
    """A runtime of a trained twin (not of an exported artifact): its layout is the twin's, known after
    `load`; batches are dynamic. `threads` and `details` are recorded by the floor."""

    graph: ClassVar[bool] = True

    def __init__(self) -> None:
        self._layout = "any"
        self.threads: dict[str, int] = {}
        self.details: dict[str, float | str] = {}

    def capabilities(self) -> Capabilities:
        return Capabilities(layout=self._layout, dynamic_batch=True, graph=self.graph)


def twin_at(path: Path) -> tuple[RunDir, Twin]:
    """The run folder and twin of a trained-twin folder `<run>/artifacts/<twin>`."""
    path = Path(path)
    run_dir = RunDir(path.parent.parent)
    if run_dir.twin_dir(path.name) != path:
        raise ValueError(f"{path} is not a trained-twin folder (expected <run folder>/artifacts/<twin>)")
    return run_dir, get_twin(path.name)


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the train stage for twin {path.parent.name!r} first")
    return path


def load_keras(path: Path) -> tuple[Twin, Any]:
    """The Keras reference model of the trained twin at `path`."""
    import keras

    from deploy_compare.models.training import KERAS_FILE

    _, twin = twin_at(path)
    return twin, keras.models.load_model(_require(Path(path) / KERAS_FILE), custom_objects=twin.keras_objects())


def load_torch(path: Path) -> tuple[Twin, Any]:
    """The PyTorch twin holding the transplanted Keras weights (eval mode) of the trained twin at `path`."""
    import torch

    from deploy_compare.models.training import TORCH_FILE

    _, twin = twin_at(path)
    model = twin.build_torch()
    model.load_state_dict(torch.load(_require(Path(path) / TORCH_FILE), weights_only=True))
    return twin, model.eval()
