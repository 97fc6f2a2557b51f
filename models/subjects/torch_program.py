"""A `torch.export` program (`.pt2`, `torch.export.save`): its input spec is the program's own."""
from __future__ import annotations

from deploy_compare.models.subjects.base import SUBJECTS, InputSpec
from deploy_compare.models.subjects.torch_models import TorchSubject, tensor_spec


def _program_module_class():
    import torch

    class _ProgramModule(torch.nn.Module):
        """An exported program's module as the exporters take it: `eval()` (which the program's own module
        refuses: it is always in inference form) only sets the flag."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

        def train(self, mode: bool = True):
            self.training = mode
            return self

    return _ProgramModule


def ProgramModule(inner):  # a class made on first use: torch is imported lazily
    return _program_module_class()(inner)


@SUBJECTS.add
class TorchProgramSubject(TorchSubject):
    name = "torch-program"
    description = "a torch.export program (.pt2)"
    suffix = ".pt2"

    def load(self) -> None:
        import torch

        self.program = torch.export.load(self.target)
        self.module = ProgramModule(self.program.module())

    def signature(self) -> InputSpec | None:
        inputs = [n for n in self.program.graph.nodes if n.op == "placeholder"
                  and n.name in self.program.graph_signature.user_inputs]
        if len(inputs) != 1 or "val" not in inputs[0].meta:
            return None
        return tensor_spec(inputs[0].meta["val"])
