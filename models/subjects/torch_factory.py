"""`package.module:factory`: a callable returning an `nn.Module`, with `--state-dict FILE` loaded into it."""
from __future__ import annotations

import re

from deploy_compare.models.subjects.base import SUBJECTS, SubjectError
from deploy_compare.models.subjects.torch_models import TorchSubject, load_factory

FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@SUBJECTS.add
class TorchFactorySubject(TorchSubject):
    name = "torch-module"
    description = "package.module:factory returning a torch.nn.Module (optionally with --state-dict FILE)"

    @classmethod
    def claims(cls, target: str) -> bool:
        return bool(FACTORY.match(target))

    def load(self) -> None:
        import torch

        module = load_factory(self.target)
        if not isinstance(module, torch.nn.Module):
            raise SubjectError(f"--model {self.target} returned a {type(module).__name__}, not a torch.nn.Module")
        if self.options.state_dict:
            module.load_state_dict(torch.load(self.options.state_dict, weights_only=True))
        self.module = module.eval()

    def default_name(self) -> str:
        return self.target.replace(":", "-")
