"""Senders: one request to one endpoint, timed with `time.perf_counter` and reported through locust's
`request` event. Imported only inside a locust process (gevent-patched).

A sender owns its connections and a pre-serialized request cycle, so sending costs no serialization.
Closed-loop users hold one sender each; the open-loop scheduler shares one sender between its
in-flight requests. The senders:
- REST over http: `deploy_compare.loadtests.rawhttp.RawHttpSender` (pre-built HTTP/1.1 requests, plain sockets);
  over https: `RestSender` below (locust's FastHttpSession: geventhttpclient).
- gRPC: `deploy_compare.loadtests.rawgrpc.RawGrpcSender` (pre-built HTTP/2 frames, plain sockets), calling
  - TorchServe  /org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions (PredictionsRequest)
  - TF Serving  /tensorflow.serving.PredictionService/Predict (PredictRequest)
  with pre-built bytes of the official messages (`deploy_compare.loadtests.requests`). Responses are not decoded
  (parity of served answers is the serving stage's job); a non-OK status is an error of kind
  `grpc_<STATUS>`.
"""
from __future__ import annotations

import itertools
from typing import Any

# REST predict paths per API style (any other TF Serving-style endpoint uses the tfserving path)
API_PATHS = {"tfserving": "/v1/models/{model}:predict", "torchserve": "/predictions/{model}"}
TORCHSERVE_PREDICT = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TFSERVING_PREDICT = "/tensorflow.serving.PredictionService/Predict"


def error_kind(exception: BaseException | None, response: Any = None) -> str:
    """Short, stable name of a failed request's kind: http_<code>, grpc_<STATUS> or the exception type."""
    code = getattr(response, "status_code", None)
    if code:
        return f"http_{code}"
    grpc_code = getattr(exception, "code", None)
    if callable(grpc_code):
        try:
            return f"grpc_{grpc_code().name}"
        except Exception:  # not a grpc.RpcError after all: fall through to the type name
            pass
    return type(exception).__name__ if exception is not None else "unknown"


class RestSender:
    """POST pre-serialized JSON bodies to one path (FastHttpSession: geventhttpclient, perf_counter timing)."""

    def __init__(self, environment: Any, host: str, path: str, bodies: list[bytes], headers: dict[str, str],
                 concurrency: int = 1, session: Any = None) -> None:
        from locust.contrib.fasthttp import FastHttpSession

        self.session = session or FastHttpSession(base_url=host, request_event=environment.events.request,
                                                  user=None, concurrency=max(1, concurrency),
                                                  network_timeout=30.0, connection_timeout=10.0)
        self.path = path
        self.bodies = itertools.cycle(bodies)
        self.headers = {"Content-Type": "application/json", **headers}

    def send(self, context: dict | None = None) -> None:
        self.session.post(self.path, data=next(self.bodies), headers=self.headers, name=self.path,
                          context=context or {})
