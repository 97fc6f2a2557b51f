"""Python stubs of TorchServe's gRPC API, compiled at run time from the protos inside the installed TorchServe jar
(`ts/frontend/model-server.jar`: proto/inference.proto, proto/management.proto and their import
google/rpc/status.proto) with grpcio-tools, into the user's cache folder (`deploy_compare.serving.protoc`).
Nothing generated is committed or written into the package: the stubs always match the installed server."""
from __future__ import annotations

import importlib
import sys
import threading
import zipfile
from pathlib import Path
from types import ModuleType

from deploy_compare.serving.protoc import compile_protos

_PROTOS = {"inference.proto": "proto/inference.proto", "management.proto": "proto/management.proto",
           "google/rpc/status.proto": "google/rpc/status.proto"}
_LOCK = threading.Lock()


def torchserve_jar() -> Path:
    import ts

    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"TorchServe's frontend jar is missing at {jar}; reinstall torchserve")
    return jar


def generate() -> Path:
    """The stubs' folder, compiled on first use for this jar's protos."""
    with zipfile.ZipFile(torchserve_jar()) as jar:
        sources = {dest: jar.read(member) for dest, member in _PROTOS.items()}
    return compile_protos("torchserve", sources, python=True)


def load() -> tuple[ModuleType, ModuleType]:
    """(inference_pb2, inference_pb2_grpc) of TorchServe's inference API."""
    with _LOCK:
        path = str(generate())
        if path not in sys.path:
            sys.path.append(path)
        return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")
