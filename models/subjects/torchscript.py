"""A TorchScript file (`torch.jit.save`): no input spec of its own (give --input-shape or --sample)."""
from __future__ import annotations

from deploy_compare.models.subjects.base import SUBJECTS
from deploy_compare.models.subjects.torch_models import TorchSubject, is_zip_with


@SUBJECTS.add
class TorchScriptSubject(TorchSubject):
    name = "torchscript"
    description = "a TorchScript file (.pt, torch.jit.save)"

    @classmethod
    def claims(cls, target: str) -> bool:
        return target.endswith((".pt", ".pth")) and is_zip_with(target, "constants.pkl")

    def load(self) -> None:
        import torch

        self.module = torch.jit.load(self.target).eval()
