"""Python stubs of TorchServe's gRPC API, generated at run time from the protos inside the installed
TorchServe jar (`ts/frontend/model-server.jar`: proto/inference.proto, proto/management.proto and
their import google/rpc/status.proto) with grpcio-tools, into the git-ignored `serving/_generated/`.
Nothing generated is committed: the stubs always match the installed server."""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from types import ModuleType

GENERATED = Path(__file__).with_name("_generated")
_PROTOS = {"inference.proto": "proto/inference.proto", "management.proto": "proto/management.proto",
           "google/rpc/status.proto": "google/rpc/status.proto"}
_LOCK = threading.Lock()


def torchserve_jar() -> Path:
    import ts

    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"TorchServe's frontend jar is missing at {jar}; reinstall torchserve")
    return jar


def _version() -> str:
    from importlib.metadata import version

    return version("torchserve")


def stub_dir() -> Path:
    return GENERATED / f"torchserve-{_version()}"


def generate(force: bool = False) -> Path:
    """Generate the stubs once per TorchServe version (atomic: concurrent callers are safe)."""
    out = stub_dir()
    if out.is_dir() and not force:
        return out
    GENERATED.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".stubs-", dir=GENERATED))
    try:
        src = tmp / "src"
        with zipfile.ZipFile(torchserve_jar()) as jar:
            for dest, member in _PROTOS.items():
                (src / dest).parent.mkdir(parents=True, exist_ok=True)
                (src / dest).write_bytes(jar.read(member))
        spec = importlib.util.find_spec("grpc_tools")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("grpcio-tools is not installed; it generates TorchServe's gRPC stubs "
                                      "(pip install grpcio-tools)")
        include = Path(spec.submodule_search_locations[0]) / "_proto"
        gen = tmp / "gen"
        gen.mkdir()
        # protoc runs in its own process: its compiler extension crashed (SIGSEGV) when called inside a process
        # that had already loaded TensorFlow's and PyTorch's native libraries
        proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"-I{include}",
                               f"--python_out={gen}", f"--grpc_python_out={gen}", *[str(src / p) for p in _PROTOS]],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"grpc_tools.protoc failed ({proc.returncode}) on TorchServe's protos from "
                               f"{torchserve_jar()}: {proc.stderr.strip()[-2000:]}")
        try:
            os.rename(gen, out)
        except OSError:
            if not out.is_dir():  # another process won the race: use its result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load() -> tuple[ModuleType, ModuleType]:
    """(inference_pb2, inference_pb2_grpc) of TorchServe's inference API."""
    with _LOCK:
        path = str(generate())
        if path not in sys.path:
            sys.path.append(path)
        return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")
