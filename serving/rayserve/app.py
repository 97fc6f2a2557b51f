"""The Ray Serve application: one deployment per served artifact, behind one ingress that speaks TF
Serving's APIs, so the toolkit's TF Serving clients and load senders drive it unchanged.

    REST  POST /v1/models/<name>:predict  {"instances": [...]}  ->  {"predictions": [...]}
          GET  /v1/models/<name>          TF Serving's model status (AVAILABLE once the replica loaded)
    gRPC  tensorflow.serving.PredictionService/Predict, routed on `model_spec.name`

A model replica loads its artifact with the toolkit's own runtime (`models/runtimes`, the one the parity
gate and the floor use) with the configured intra-op threads, and validates a REST body with the
TorchServe handler's parser (`InstancesHandler.parse`): the same 4xx answers with a JSON reason on both
servers. Errors on gRPC are INVALID_ARGUMENT / NOT_FOUND with the reason in the details.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from ray import serve

from deploy_compare.serving.rayserve.config import INGRESS, RayServeConfig

_PATH = re.compile(r"^/v1/models/([A-Za-z0-9_.-]+)(:predict)?/?$")


def _json(status: int, data: dict) -> tuple[int, bytes]:
    return status, json.dumps(data, separators=(",", ":")).encode("utf-8")


class ServedArtifact:
    """One artifact in one replica."""

    def __init__(self, spec: dict, threads: int) -> None:
        from deploy_compare.models.runtimes.base import runtime_for_format
        from deploy_compare.serving.torchserve.handler import InstancesHandler

        self.spec = spec
        t0 = time.perf_counter()
        self.runtime = runtime_for_format(spec["format"], spec["layout"])
        self.runtime.load(Path(spec["path"]), threads)
        self.load_seconds = time.perf_counter() - t0
        self.parser = InstancesHandler()
        self.parser.signature = {"input_shape": spec["input_shape"], "dtype": spec["dtype"], "layout": spec["layout"]}
        self.threads = threads

    def predict_json(self, body: bytes) -> tuple[int, bytes]:
        from deploy_compare.serving.torchserve.handler import BadRequest

        try:
            x = self.parser.parse({"body": body})
        except BadRequest as exc:
            return _json(exc.code, {"error": str(exc)})
        out = self.runtime.predict(np.ascontiguousarray(x))
        return _json(200, {"predictions": np.asarray(out).tolist()})

    def predict_array(self, x: np.ndarray) -> np.ndarray | str:
        """Logits, or the reason `x` is refused (a string)."""
        want = tuple(self.spec["input_shape"])
        if x.ndim < 1 or x.shape[0] < 1 or tuple(x.shape[1:]) != want:
            return (f"input must have shape [batch, {', '.join(map(str, want))}] ({self.spec['layout']}), "
                    f"got {list(x.shape)}")
        if not np.all(np.isfinite(x)):
            return "input contains NaN or infinite values"
        return np.asarray(self.runtime.predict(np.ascontiguousarray(x, dtype=self.spec["dtype"])))

    def status(self) -> dict:
        return {"load_seconds": self.load_seconds, "pid": os.getpid(), "format": self.spec["format"],
                "threads": self.threads}


class TFServingApi:
    """The ingress: TF Serving's REST paths and gRPC Predict, routed to the model deployments by name."""

    def __init__(self, models: dict, specs: dict) -> None:
        self.models = models  # served name -> DeploymentHandle
        self.specs = specs
        # TF Serving's protos without TensorFlow (protos.py), at start rather than in the first gRPC request
        from deploy_compare.serving.rayserve import protos  # noqa: F401

    async def __call__(self, request):
        from starlette.responses import Response

        m = _PATH.match(request.url.path)
        name = m.group(1) if m else ""
        if name not in self.models:
            status, body = _json(404, {"error": f"no model at {request.url.path}; served: "
                                                f"{', '.join(f'/v1/models/{n}:predict' for n in sorted(self.models))}"})
        elif m.group(2) and request.method == "POST":
            status, body = await self.models[name].predict_json.remote(await request.body())
        elif not m.group(2) and request.method == "GET":
            info = await self.models[name].status.remote()
            status, body = _json(200, {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                                  "status": {"error_code": "OK", "error_message": ""}}],
                                       "deploy_compare": info})
        else:
            status, body = _json(405, {"error": f"{request.method} is not allowed on {request.url.path}"})
        return Response(body, status_code=status, media_type="application/json")

    async def Predict(self, request, grpc_context):  # TF Serving's method name
        import grpc

        from deploy_compare.serving.clients.tfserving_grpc import tensor_array, tensor_proto
        from deploy_compare.serving.rayserve.protos import predict_pb2

        name = request.model_spec.name
        if name not in self.models:
            return self._refuse(grpc_context, grpc.StatusCode.NOT_FOUND,
                                f"no model named {name!r}; served: {', '.join(sorted(self.models))}")
        spec = self.specs[name]
        if list(request.inputs) != [spec["input_name"]]:
            return self._refuse(grpc_context, grpc.StatusCode.INVALID_ARGUMENT,
                                f"{name} takes one input named {spec['input_name']!r}, got {sorted(request.inputs)}")
        try:
            x = tensor_array(request.inputs[spec["input_name"]])
        except ValueError as exc:
            return self._refuse(grpc_context, grpc.StatusCode.INVALID_ARGUMENT, f"input tensor is malformed: {exc}")
        out = await self.models[name].predict_array.remote(x)
        if isinstance(out, str):
            return self._refuse(grpc_context, grpc.StatusCode.INVALID_ARGUMENT, out)
        resp = predict_pb2.PredictResponse()
        resp.model_spec.name = name
        resp.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        resp.outputs[spec["output_name"]].CopyFrom(tensor_proto(out))
        return resp

    @staticmethod
    def _refuse(grpc_context, code, details: str):
        from deploy_compare.serving.rayserve.protos import predict_pb2

        grpc_context.set_code(code)
        grpc_context.set_details(details)
        return predict_pb2.PredictResponse()


def build(config: RayServeConfig):
    """The bound application: one deployment per model (named by its served name) and the ingress."""
    common = dict(num_replicas=config.num_replicas, max_ongoing_requests=config.max_ongoing_requests,
                  ray_actor_options={"num_cpus": config.replica_num_cpus})
    specs = {m.name: asdict(m) for m in config.models}
    model_cls = serve.deployment(ServedArtifact)
    models = {name: model_cls.options(name=name, **common).bind(spec, config.threads) for name, spec in specs.items()}
    return serve.deployment(TFServingApi).options(name=INGRESS, **common).bind(models, specs)
