"""TF Serving's gRPC `PredictionService.Predict`: a `PredictRequest` with the batch as a float32
`TensorProto` (packed `tensor_content`) under the signature's input name; the answer's output tensor
is decoded from `tensor_content` or `float_val`."""
from __future__ import annotations

import grpc
import numpy as np

from deploy_compare.serving.clients.base import Client, PredictError
from deploy_compare.serving.endpoint import Endpoint

SIGNATURE = "serving_default"


def tensor_proto(x: np.ndarray):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    x = np.ascontiguousarray(x, dtype="<f4")
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in x.shape])
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, tensor_content=x.tobytes())


def tensor_array(proto) -> np.ndarray:
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype="<f4").reshape(shape).astype(np.float32)
    return np.asarray(proto.float_val, dtype=np.float32).reshape(shape)


def predict_request(model: str, input_name: str, x: np.ndarray, signature: str = SIGNATURE):
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    req.inputs[input_name].CopyFrom(tensor_proto(x))
    return req


def predict_response_array(resp, output_name: str) -> np.ndarray:
    if output_name not in resp.outputs:
        raise KeyError(f"answer has no output {output_name!r}; outputs: {sorted(resp.outputs)}")
    return tensor_array(resp.outputs[output_name])


class TFServingGrpcClient(Client):
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        super().__init__(endpoint, timeout)
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(endpoint.target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        if endpoint.signature is None:
            raise ValueError(f"{endpoint.stack} {endpoint.served_name}: a TF Serving gRPC endpoint needs its tensor "
                             "names (Endpoint.signature)")
        self.input_name = endpoint.signature.input_name
        self.output_name = endpoint.signature.output_name
        self.signature = endpoint.signature.signature_name

    def encode(self, x: np.ndarray):
        return predict_request(self.endpoint.served_name, self.input_name, x, self.signature)

    def send(self, payload) -> np.ndarray:
        try:
            resp = self.stub.Predict(payload, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise PredictError(self.endpoint, exc.code().name, exc.details() or "") from None
        return predict_response_array(resp, self.output_name)

    def close(self) -> None:
        self.channel.close()
