"""TorchServe handler packaged into every .mar: TF Serving's REST body in and out, so one load test
fits both servers.

    request  {"instances": [sample, ...]}      (REST body, or the gRPC `input["data"]` bytes)
    answer   {"predictions": [logits, ...]}    (200)
    error    {"error": "what is wrong"}         (400 bad body / shape / dtype, 413 too many instances)

It runs inside the TorchServe worker with only this file and `signature.json` (per-sample input
shape, dtype, layout, artifact format and name, threads) from the archive. `LOADERS` maps the artifact
format to its loader, each importing only its own framework, when the worker loads its model, beyond the
torch that TorchServe's worker always imports: TorchScript runs with torch, ONNX (from either exporter) with
onnxruntime, SavedModel with TensorFlow, TFLite with LiteRT (`ai_edge_litert`, XNNPACK on), as the
in-process runtimes run them (models/runtimes/). Each request of a server-side batch is validated on its
own: a bad request gets its 4xx, the good ones in the same batch still get their predictions.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

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
        path = os.path.join(model_dir, self.signature["artifact"])  # a file, or a folder (SavedModel)
        fmt = self.signature["format"]
        if fmt not in LOADERS:
            raise ValueError(f"this handler cannot load {fmt!r} artifacts (it loads {', '.join(sorted(LOADERS))})")
        self.run = LOADERS[fmt](path, threads)
        self.initialized = True
        log.info("loaded %s (%s %s) threads=%d input %s %s", path, fmt, self.signature.get("variant", "fp32"),
                 threads, self.signature["input_shape"], self.signature["dtype"])

    # --- request handling ---
    def parse(self, row: dict, headers: dict | None = None) -> np.ndarray:
        body = next((row[k] for k in ("data", "body") if k in row), None)
        if body is None or (isinstance(body, (bytes, bytearray, str)) and len(body) == 0):
            raise BadRequest(no_body(row, headers or {}))
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
                arrays.append(self.parse(row, _headers(context, i)))
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


Run = Callable[[np.ndarray], np.ndarray]


def _torch_runner(load: Callable[[], Callable], threads: int) -> Run:
    """`run(x)` of the torch callable `load()` returns, under inference mode, with `threads` intra-op threads
    and one inter-op thread (set before the load)."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    module = load()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run


def load_torchscript(path: str, threads: int) -> Run:
    import torch

    return _torch_runner(lambda: torch.jit.load(path, map_location="cpu").eval(), threads)


def load_torch_export(path: str, threads: int) -> Run:
    """A torch.export ExportedProgram (.pt2): its module runs the exported graph."""
    import torch

    return _torch_runner(lambda: torch.export.load(path).module(), threads)


def load_aoti(path: str, threads: int) -> Run:
    """An AOTInductor package (.pt2): the compiled shared library; nothing compiles here."""
    import torch._inductor

    return _torch_runner(lambda: torch._inductor.aoti_load_package(path), threads)


def load_onnx(path: str, threads: int) -> Run:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    return run


def load_savedmodel(path: str, threads: int) -> Run:
    """The SavedModel folder's `serving_default` signature, called by its input name."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = tf.saved_model.load(path)
    fn = model.signatures["serving_default"]
    (input_name,) = fn.structured_input_signature[1]
    (output_name,) = fn.structured_outputs

    def run(x: np.ndarray, _model=model) -> np.ndarray:  # `_model` keeps the signature's variables alive
        return fn(**{input_name: tf.constant(x)})[output_name].numpy()

    return run


def load_tflite(path: str, threads: int) -> Run:
    """LiteRT with its default delegate (XNNPACK); the input is resized only when the batch changes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=OpResolverType.BUILTIN)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    shape: list[tuple[int, ...]] = [()]

    def run(x: np.ndarray) -> np.ndarray:
        if x.shape != shape[0]:
            interp.resize_tensor_input(inp["index"], x.shape, strict=True)
            interp.allocate_tensors()
            shape[0] = x.shape
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    return run


# artifact format -> loader; the formats each server serves are rows of serving/catalog.py SERVED_FORMATS
LOADERS: dict[str, Callable[[str, int], Run]] = {
    "torchscript": load_torchscript, "onnx": load_onnx, "savedmodel": load_savedmodel, "tflite": load_tflite,
    "torch-export": load_torch_export, "aoti": load_aoti}


def _headers(context, idx: int) -> dict:
    """The request's HTTP headers as TorchServe passes them (empty for gRPC, or a context without them)."""
    try:
        return dict(context.get_all_request_header(idx) or {})
    except (AttributeError, IndexError, TypeError):
        return {}


def no_body(row: dict, headers: dict) -> str:
    """Why no body reached the handler, from what did: the content type and size the client sent, and the form
    fields TorchServe made of it. TorchServe decodes an application/x-www-form-urlencoded body (what
    `curl --data @body.json` sends) into form fields before the handler runs; a JSON text that is not
    `key=value` pairs then arrives as nothing at all."""
    lower = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
    content_type = lower.get("content-type", "")
    size = lower.get("content-length")
    if size is None:
        size = str(sum(len(k) + len(v) for k, v in row.items() if isinstance(v, (bytes, bytearray, str))))
    received = f"received Content-Type {content_type or '(none)'}, {size} bytes"
    if "form" in content_type:
        fields = sorted(k for k in row if k not in ("data", "body"))
        decoded = f"form fields {fields}" if fields else "no form fields"
        return (f"no JSON body reached the model: {received}, which TorchServe decodes as a form ({decoded}); "
                'expected Content-Type: application/json with a body {"instances": [...]} '
                "(curl: -H 'Content-Type: application/json' --data @body.json)")
    return f'empty request body ({received}); expected a JSON body {{"instances": [...]}}'


_service = InstancesHandler()


def handle(data, context):
    """TorchServe entry point."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
