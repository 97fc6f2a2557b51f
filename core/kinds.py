"""The closed sets of values the contracts between packages use, as `StrEnum`s.

A `StrEnum` member is a `str` (JSON and f-strings see the plain value), while pydantic rejects any other
value when a result is loaded, and a type checker sees the allowed values. Each axis lists only what
the toolkit implements; adding a format, protocol or mode starts here.
"""
from __future__ import annotations

from enum import StrEnum


class ArtifactFormat(StrEnum):
    SAVEDMODEL = "savedmodel"
    TFLITE = "tflite"
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    TORCH_EXPORT = "torch-export"  # a torch.export ExportedProgram (.pt2)
    AOTI = "aoti"  # an AOTInductor package (.pt2 holding a compiled shared library)


class Layout(StrEnum):
    NF = "NF"  # (batch, features)
    NHWC = "NHWC"  # Keras / TensorFlow images
    NCHW = "NCHW"  # PyTorch images
    TENSOR = "tensor"  # a user's model: (batch, ...) exactly as the model takes it, never converted


class OutputKind(StrEnum):
    """What a model's output means: decides which parity figures apply (models/parity.py)."""
    CLASS_LOGITS = "class-logits"  # (batch, classes): top-1 agreement applies
    TOKEN_LOGITS = "token-logits"  # (batch, positions, vocabulary): top-1 per position applies
    REGRESSION = "regression"  # any shape of real values: error figures only


class Protocol(StrEnum):
    REST = "rest"
    GRPC = "grpc"


class LoadModeKind(StrEnum):
    CLOSED = "closed"  # N users, each waits for its answer
    OPEN = "open"  # Poisson arrivals at a target rate, latency from the scheduled send


class LauncherChoice(StrEnum):
    AUTO = "auto"  # the first launcher that can run the server here
    NATIVE = "native"
    DOCKER = "docker"
    BOTH = "both"  # every stack natively and in a container, side by side


class ServerLogging(StrEnum):
    """How TorchServe logs (serving/torchserve/config.py)."""
    SERVING = "serving"  # the access log, startup, warnings and errors; no per-request debug lines, no gzip
    DEFAULT = "default"  # TorchServe's own log4j2.xml (about a dozen lines per request)


class CpuIdle(StrEnum):
    """What idle CPUs do while load is measured (core/cpuidle.py)."""
    POLL = "poll"  # hold /dev/cpu_dma_latency at 0: idle CPUs poll, no halt/wake-up cost per request
    DEFAULT = "default"  # the kernel's choice (on a VM: halt, and a wake-up through the hypervisor)


class ProfileKind(StrEnum):
    QUICK = "quick"
    FULL = "full"
    EXHAUSTIVE = "exhaustive"


class RuntimeFamily(StrEnum):
    """The library an in-process runtime runs on: what its measuring process imports (the floor groups by it)."""
    TENSORFLOW = "tensorflow"
    PYTORCH = "pytorch"
    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"
    PYTENSOR = "pytensor"
    NONE = "none"  # the null runtime: no library at all


class FloorGrouping(StrEnum):
    """How the floor puts its points into measuring processes."""
    ISOLATED = "isolated"  # one fresh process per model x runtime x threads x repeat
    FAMILY = "family"  # one fresh process per runtime library x threads x repeat, its models in turn
