"""TorchServe handler packaged into every .mar: TF Serving's REST body in and out, so one load test
fits both servers.

    request  {"instances": [sample, ...]}      (REST body, or the gRPC `input["data"]` bytes)
    answer   {"predictions": [logits, ...]}    (200)
    error    {"error": "what is wrong"}         (400 bad body / shape / dtype, 413 too many instances)

It runs inside the TorchServe worker with only this file and `signature.json` (per-sample input
shape, dtype, layout, artifact format, threads) from the archive. TorchScript is run with torch,
ONNX with onnxruntime. Each request of a server-side batch is validated on its own: a bad request
gets its 4xx, the good ones in the same batch still get their predictions.
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

MAX_INSTANCES = 4096


class BadRequest(Exception):
    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


class InstancesHandler:
    def __init__(self) -> None:
        self.initialized = False
        self.signature: dict = {}
        self.run = None

    def initialize(self, context) -> None:
        model_dir = context.system_properties["model_dir"]
        with open(os.path.join(model_dir, "signature.json"), encoding="utf-8") as fh:
            self.signature = json.load(fh)
        threads = int(self.signature["threads"])
        path = os.path.join(model_dir, context.manifest["model"]["serializedFile"])
        loader = {"torchscript": self._load_torchscript, "onnx": self._load_onnx}[self.signature["format"]]
        self.run = loader(path, threads)
        self.initialized = True
        log.info("loaded %s (%s) threads=%d input %s %s", path, self.signature["format"], threads,
                 self.signature["input_shape"], self.signature["dtype"])

    @staticmethod
    def _load_torchscript(path: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        module = torch.jit.load(path, map_location="cpu").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run

    @staticmethod
    def _load_onnx(path: str, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: x})[0]

        return run

    # --- request handling ---
    def parse(self, row: dict) -> np.ndarray:
        body = next((row[k] for k in ("data", "body") if k in row), None)
        if body is None or (isinstance(body, (bytes, bytearray, str)) and len(body) == 0):
            raise BadRequest('empty request body; send {"instances": [...]}')
        if isinstance(body, (bytes, bytearray)):
            try:
                body = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(f"request body is not JSON ({exc.__class__.__name__}); "
                                 'send {"instances": [...]}') from None
        elif isinstance(body, str):
            try:
                body = json.loads(body)
            except json.JSONDecodeError as exc:
                raise BadRequest(f"request body is not JSON ({exc.__class__.__name__})") from None
        if not isinstance(body, dict) or "instances" not in body:
            raise BadRequest('request body must be a JSON object with an "instances" list')
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest('"instances" must be a non-empty list')
        if len(instances) > MAX_INSTANCES:
            raise BadRequest(f"{len(instances)} instances exceed the limit of {MAX_INSTANCES} per request", 413)
        want = tuple(self.signature["input_shape"])
        try:
            x = np.asarray(instances)
        except ValueError:
            raise BadRequest(f"instances are ragged; each must have shape {list(want)}") from None
        if x.dtype.kind not in "fiu":  # rejects strings, null (object) and booleans
            raise BadRequest(f"instances must be numbers ({self.signature['dtype']}), got {x.dtype.name} values")
        if tuple(x.shape[1:]) != want:
            raise BadRequest(f"each instance must have shape {list(want)} ({self.signature['layout']}), "
                             f"got {list(x.shape[1:])}")
        if not np.all(np.isfinite(x)):
            raise BadRequest("instances contain NaN or infinite values")
        return x.astype(self.signature["dtype"], copy=False)

    def handle(self, data: list, context) -> list:
        answers: list = [None] * len(data)
        good, arrays = [], []
        for i, row in enumerate(data):
            try:
                arrays.append(self.parse(row))
                good.append(i)
            except BadRequest as exc:
                context.set_response_status(code=exc.code, phrase="Bad Request" if exc.code == 400 else
                                            "Payload Too Large", idx=i)
                answers[i] = json.dumps({"error": str(exc)})
        if good:
            out = self.run(np.ascontiguousarray(np.concatenate(arrays, axis=0)))
            start = 0
            for i, x in zip(good, arrays):
                answers[i] = json.dumps({"predictions": out[start:start + len(x)].tolist()})
                start += len(x)
        return answers


_service = InstancesHandler()


def handle(data, context):
    """TorchServe entry point."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
