"""Senders: one request to one endpoint, timed with `time.perf_counter` and reported through locust's
`request` event. Imported only inside a locust process (gevent-patched).

A sender owns its connection (REST: a geventhttpclient pool via locust's FastHttpSession; gRPC: a
channel) and a pre-serialized request cycle, so sending costs no serialization. Closed-loop users
hold one sender each; the open-loop scheduler shares one sender between its in-flight requests.

gRPC requests are pre-built bytes of the official messages (`loadtests.requests`), sent through grpc's
generic `unary_unary` with no serializer, so the hot path needs no generated stubs:
- TorchServe  /org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions (PredictionsRequest)
- TF Serving  /tensorflow.serving.PredictionService/Predict (PredictRequest)
Responses are not decoded (parity of served answers is the serving stage's job); a non-OK status is
an error of kind `grpc_<STATUS>`.
"""
from __future__ import annotations

import itertools
import time
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


class GrpcSender:
    """A unary call with pre-serialized request bytes over one channel; fires the `request` event."""

    _gevent_ready = False

    def __init__(self, environment: Any, target: str, method: str, requests: list[bytes],
                 metadata: list[tuple[str, str]], name: str, timeout: float = 30.0) -> None:
        import grpc

        GrpcSender._init_gevent()
        self.environment = environment
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20),
                                                              ("grpc.max_send_message_length", 64 << 20)])
        self.call = self.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        self.requests = itertools.cycle(requests)
        self.metadata = metadata or None
        self.name = name
        self.timeout = timeout

    @classmethod
    def _init_gevent(cls) -> None:
        if not cls._gevent_ready:
            from grpc.experimental import gevent as grpc_gevent

            grpc_gevent.init_gevent()
            cls._gevent_ready = True

    def send(self, context: dict | None = None) -> None:
        import grpc

        request = next(self.requests)
        exc: BaseException | None = None
        length = 0
        t0 = time.perf_counter()
        try:
            length = len(self.call(request, timeout=self.timeout, metadata=self.metadata))
        except grpc.RpcError as err:
            exc = err
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        self.environment.events.request.fire(request_type="grpc", name=self.name, response_time=elapsed_ms,
                                             response_length=length, exception=exc, context=context or {},
                                             response=None)

    def close(self) -> None:
        self.channel.close()
