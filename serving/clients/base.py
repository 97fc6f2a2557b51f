"""The client axis. `encode` builds the wire payload (outside any timed region if the caller wants),
`send` does one request and decodes the answer, `predict` is both. A non-success answer raises
`PredictError` with the status and the server's message."""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from deploy_compare.core.registry import Registry
from deploy_compare.serving.endpoint import Endpoint


class PredictError(RuntimeError):
    def __init__(self, endpoint: Endpoint, status: str | int, message: str) -> None:
        super().__init__(f"{endpoint.stack} {endpoint.protocol} {endpoint.served_name}: {status}: {message[:300]}")
        self.status = status
        self.message = message


class Client(ABC):
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    @abstractmethod
    def encode(self, x: np.ndarray) -> Any:
        """The request payload for batch `x` (already in `endpoint.layout`)."""

    @abstractmethod
    def send(self, payload: Any) -> np.ndarray:
        """One request; the logits as float32 [batch, classes]."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.send(self.encode(x))

    def request_bytes(self, x: np.ndarray) -> bytes:
        """The request for batch `x` as bytes on the wire (a REST body, or a serialized protobuf message),
        e.g. for a load generator that sends pre-built requests."""
        payload = self.encode(x)
        return bytes(payload) if isinstance(payload, (bytes, bytearray)) else payload.SerializeToString()

    def close(self) -> None:  # noqa: B027  (optional hook: most clients hold nothing to close)
        pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# "<server>/<protocol>" -> "module:Class" (imported on first use: gRPC and TF protos stay lazy)
CLIENTS: Registry[str] = Registry("client")
for _key, _target in (("torchserve/rest", "deploy_compare.serving.clients.rest:RestClient"),
                      ("tfserving/rest", "deploy_compare.serving.clients.rest:RestClient"),
                      ("torchserve/grpc", "deploy_compare.serving.clients.torchserve_grpc:TorchServeGrpcClient"),
                      ("tfserving/grpc", "deploy_compare.serving.clients.tfserving_grpc:TFServingGrpcClient"),
                      # Ray Serve's ingress speaks TF Serving's APIs (serving/rayserve/app.py)
                      ("rayserve/rest", "deploy_compare.serving.clients.rest:RestClient"),
                      ("rayserve/grpc", "deploy_compare.serving.clients.tfserving_grpc:TFServingGrpcClient")):
    CLIENTS.register(_key)(_target)


def make_client(endpoint: Endpoint, timeout: float = 30.0) -> Client:
    module_name, _, cls_name = CLIENTS.get(f"{endpoint.server}/{endpoint.protocol}").partition(":")
    return getattr(importlib.import_module(module_name), cls_name)(endpoint, timeout)
