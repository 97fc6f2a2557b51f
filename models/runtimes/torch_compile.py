"""`torch-compile`: the PyTorch twin through `torch.compile` (TorchDynamo + Inductor, default mode).

Compilation is lazy: the first call of each new input shape compiles (with a C++ compiler on this
CPU build), so the floor's first-inference figure holds the compile time. Inductor caches compiled
code on disk (`TORCHINDUCTOR_CACHE_DIR`, default /tmp/torchinductor_<user>); the cache folder and
whether it already existed are recorded in `details`, since a warm cache shortens the first call.
"""
from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path
from typing import Any

from deploy_compare.models.runtimes.base import RUNTIMES
from deploy_compare.models.runtimes.torch_eager import TorchEager


def inductor_cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"torchinductor_{getpass.getuser()}"
    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR", default))


@RUNTIMES.add
class TorchCompile(TorchEager):
    name = "torch-compile"
    graph = True
    eager = "torch-eager"
    cost_hint = 6.0  # compiles per model and shape at the first call
    enable_command = "apt-get install -y g++  # Inductor compiles C++ kernels on CPU"

    def _wrap(self, model: Any) -> Any:
        import torch

        cache = inductor_cache_dir()
        self.details = {"backend": "inductor", "mode": "default", "compile": "lazy, at the first call per shape",
                        "inductor_cache_dir": str(cache), "inductor_cache_warm": str(cache.is_dir()).lower()}
        return torch.compile(model, backend="inductor")
