"""TorchServe's inference gRPC API (`InferenceAPIsService.Predictions`), stubs generated from the
installed jar. The request carries the same JSON body as REST in `input["data"]`; the token goes in
the `authorization: Bearer <key>` metadata."""
from __future__ import annotations

import grpc
import numpy as np

from deploy_compare.serving import grpc_stubs
from deploy_compare.serving.clients.base import Client, PredictError
from deploy_compare.serving.clients.rest import parse_response, request_body
from deploy_compare.serving.endpoint import Endpoint


class TorchServeGrpcClient(Client):
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        super().__init__(endpoint, timeout)
        self.pb, pb_grpc = grpc_stubs.load()
        self.channel = grpc.insecure_channel(endpoint.target, options=[
            ("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)])
        self.stub = pb_grpc.InferenceAPIsServiceStub(self.channel)
        self.metadata = tuple((k.lower(), v) for k, v in endpoint.headers.items())

    def encode(self, x: np.ndarray):
        return self.pb.PredictionsRequest(model_name=self.endpoint.served_name, input={"data": request_body(x)})

    def send(self, payload) -> np.ndarray:
        try:
            resp = self.stub.Predictions(payload, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise PredictError(self.endpoint, exc.code().name, exc.details() or "") from None
        return parse_response(self.endpoint, 200, resp.prediction)

    def close(self) -> None:
        self.channel.close()
