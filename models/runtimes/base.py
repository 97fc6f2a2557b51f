"""The runtime axis: `Runtime.load()` then `Runtime.predict()`. One module per runtime.

A runtime declares its capabilities (input layout, dynamic batch, dtypes, graph or eager) so that
callers convert inputs by capability, never by testing names. Runtimes import TensorFlow/PyTorch
lazily inside `load`. The same runtimes serve the parity gate and the floor.

Each runtime class also declares what the floor needs to plan it, so that adding a runtime is adding
one module under `models/runtimes/` (every module there is imported by `load_runtimes`):
- `format`: the artifact format it loads, or None when it runs the trained twin's folder;
- `framework`: its library (`RuntimeFamily`): the floor's `family` grouping puts one library per process;
- `imports`: the modules its process imports (and times) before `load`;
- `cost_hint`: rough seconds per measured point, to start the longest processes first;
- `eager`: for a graph runtime, the eager runtime it is compared with in the Computational-graph row;
- `twins`: the twins it can run (None: every twin).
"""
from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from deploy_compare.core.kinds import ArtifactFormat, Layout, RuntimeFamily
from deploy_compare.core.registry import Registry

if TYPE_CHECKING:
    from deploy_compare.models.exporters.base import ArtifactRecord

@dataclass(frozen=True)
class Capabilities:
    layout: Layout | Literal["any"]  # "any" when it follows the artifact or needs no input layout
    dynamic_batch: bool
    dtypes: tuple[str, ...] = ("float32",)
    graph: bool = True  # False for eager execution


class Runtime(ABC):
    name: ClassVar[str]
    framework: ClassVar[RuntimeFamily]
    format: ClassVar[ArtifactFormat | None] = None  # None: runs the trained twin (run_dir.twin_dir)
    imports: ClassVar[tuple[str, ...]]
    cost_hint: ClassVar[float] = 1.0  # rough seconds per floor point (import, load, windows)
    eager: ClassVar[str | None] = None  # graph runtimes: the eager runtime of the Computational-graph row
    twins: ClassVar[tuple[str, ...] | None] = None  # twins it can run (None: all)
    enable_command: ClassVar[str] = ""  # what makes it run where it fails for want of a tool

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A class that names itself is a runtime: it must declare what the floor plans with."""
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        missing = [attr for attr in ("framework", "imports") if not hasattr(cls, attr)]
        if missing:
            raise TypeError(f"runtime {cls.name!r} ({cls.__module__}) does not declare {', '.join(missing)}; "
                            "see the class attributes of deploy_compare.models.runtimes.base.Runtime")
        if cls.eager == cls.name:
            raise TypeError(f"runtime {cls.name!r}: `eager` names the eager counterpart, not the runtime itself")

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def load(self, path: Path, threads: int) -> None:
        """Load the artifact (or trained weights) at `path`, with `threads` intra-op threads."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for a batch `x` already in `capabilities().layout`."""

    @classmethod
    def runs_trained_twin(cls) -> bool:
        return cls.format is None

    @classmethod
    def supports(cls, twin: str) -> bool:
        return cls.twins is None or twin in cls.twins


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


class ArtifactRuntime(Runtime):
    """A runtime for an exported artifact: its layout and dynamic batch come from the artifact's record."""

    format: ClassVar[ArtifactFormat]

    def __init__(self, layout: str, dynamic_batch: bool = True) -> None:
        self._caps = Capabilities(layout=Layout(layout), dynamic_batch=dynamic_batch)

    def capabilities(self) -> Capabilities:
        return self._caps


# artifact format -> name of the runtime that loads it (filled by @register_format on the implementations)
FORMAT_RUNTIMES: Registry[str] = Registry("artifact format")

# helper modules of this package that define no runtime
_NOT_RUNTIMES = frozenset({"base", "threads", "trained"})


def register_format(cls: type[ArtifactRuntime]) -> type[ArtifactRuntime]:
    RUNTIMES.add(cls)
    FORMAT_RUNTIMES.register(cls.format)(cls.name)
    return cls


def load_runtimes() -> Registry[type[Runtime]]:
    """Import every runtime module of this package (each registers itself); frameworks stay unimported."""
    import deploy_compare.models.runtimes as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name not in _NOT_RUNTIMES:
            importlib.import_module(f"{package.__name__}.{info.name}")
    return RUNTIMES


def runtime_for(record: ArtifactRecord) -> ArtifactRuntime:
    """An unloaded runtime for an artifact, chosen by the artifact's format."""
    return runtime_for_format(record.format, record.layout, record.dynamic_batch)


def runtime_for_format(fmt: str, layout: str, dynamic_batch: bool = True) -> ArtifactRuntime:
    """An unloaded runtime for an artifact of format `fmt` taking `layout` (e.g. inside a server's replica)."""
    load_runtimes()
    cls = RUNTIMES.get(FORMAT_RUNTIMES.get(fmt))
    return cls(layout=layout, dynamic_batch=dynamic_batch)


def open_artifact(record: ArtifactRecord, run_root: Path, threads: int) -> ArtifactRuntime:
    """Runtime for `record`, loaded from `run_root / record.path` with `threads` intra-op threads."""
    runtime = runtime_for(record)
    runtime.load(Path(run_root) / record.path, threads)
    return runtime
