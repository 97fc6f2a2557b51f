"""The environment record saved with every run: what changes a number, so a reader can rerun it."""
from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "tensorflow-serving-api", "torch", "torchserve", "torch-model-archiver",
            "onnx", "onnxruntime", "tf2onnx", "ai-edge-litert", "pytensor", "scikit-learn", "numpy",
            "locust", "gevent", "hpack", "docker", "grpcio", "protobuf")  # hpack: the raw gRPC sender
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS", "OPENBLAS_CORETYPE")


@dataclass
class Environment:
    python: str
    platform: str
    cpu_model: str
    cpu_count: int
    cpu_affinity: list[int]
    memory_bytes: int
    git_commit: str
    git_dirty: bool
    packages: dict[str, str] = field(default_factory=dict)
    java: str = ""
    thread_env: dict[str, str] = field(default_factory=dict)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(args: list[str], cwd: Path) -> str:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _java_version() -> str:
    try:
        proc = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        return (proc.stderr or proc.stdout).splitlines()[0] if (proc.stderr or proc.stdout) else ""
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def capture(repo: Path | None = None) -> Environment:
    repo = repo or Path(__file__).resolve().parent.parent
    import psutil

    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 0,
        cpu_affinity=sorted(os.sched_getaffinity(0)),
        memory_bytes=int(psutil.virtual_memory().total),
        git_commit=_git(["rev-parse", "HEAD"], repo) or "unknown",
        git_dirty=bool(_git(["status", "--porcelain", "--untracked-files=no"], repo)),
        packages={name: package_version(name) for name in PACKAGES},
        java=_java_version(),
        thread_env={k: os.environ[k] for k in THREAD_VARS if k in os.environ},
    )
