"""The gRPC null endpoint: a grpc.aio server on 127.0.0.1 that answers TorchServe's
`InferenceAPIsService/Predictions` and TF Serving's `PredictionService/Predict` with fixed response
bytes, so the gRPC load generator can be measured against something that costs (almost) nothing.

One generic handler answers every method without decoding the request (raw bytes in, fixed bytes
out): a method whose name contains "Error" answers INTERNAL (to exercise error counting), a known
predict method its fixed response, any other method an empty message.

    python -m loadtests.nullgrpc --port 7070 [--host 127.0.0.1]

Start it in its own process (`start_null_grpc_server`), pinned to the server's core.
"""
from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from pathlib import Path

TORCHSERVE_PREDICT = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
TFSERVING_PREDICT = "/tensorflow.serving.PredictionService/Predict"
PREDICTIONS = [0.0] * 9 + [1.0]  # the same 10-class answer as the REST null endpoint


def _ld(field: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (the answers are small: one-byte tags, short varints)."""
    n, size = len(data), bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        size.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes([field << 3 | 2]) + bytes(size) + data


def torchserve_response() -> bytes:
    """PredictionResponse{prediction=1 bytes}: the JSON a TorchServe handler of this project returns."""
    return _ld(1, b'{"predictions": [[' + ", ".join(f"{v:.1f}" for v in PREDICTIONS).encode() + b"]]}")


def tfserving_response(output_name: str = "outputs") -> bytes:
    """PredictResponse{outputs=1 map<string, TensorProto>}: a (1, 10) DT_FLOAT tensor."""
    shape = _ld(2, b"\x08\x01") + _ld(2, b"\x08" + bytes([len(PREDICTIONS)]))
    tensor = b"\x08\x01" + _ld(2, shape) + _ld(4, struct.pack(f"<{len(PREDICTIONS)}f", *PREDICTIONS))
    return _ld(1, _ld(1, output_name.encode()) + _ld(2, tensor))


ANSWERS = {TORCHSERVE_PREDICT: torchserve_response(), TFSERVING_PREDICT: tfserving_response()}


def _handler():
    import grpc

    def identity(raw: bytes) -> bytes:
        return raw

    def method(answer: bytes | None):
        async def call(request: bytes, context) -> bytes:
            if answer is None:
                await context.abort(grpc.StatusCode.INTERNAL, "null server: method asked for an error")
            return answer
        return grpc.unary_unary_rpc_method_handler(call, request_deserializer=identity,
                                                   response_serializer=identity)

    handlers = {name: method(body) for name, body in ANSWERS.items()}
    errors, empty = method(None), method(b"")

    class Generic(grpc.GenericRpcHandler):
        def service(self, details):
            name = details.method
            return handlers.get(name) or (errors if "Error" in name else empty)

    return Generic()


async def _serve(host: str, port: int) -> None:
    import grpc

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20),
                                      ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_handler(),))
    if server.add_insecure_port(f"{host}:{port}") != port:
        raise RuntimeError(f"null gRPC server could not bind {host}:{port}")
    await server.start()
    print(f"null gRPC server listening on {host}:{port}", flush=True)
    await server.wait_for_termination()


def start_null_grpc_server(port: int, log_path: Path, cpus: set[int] | None = None, host: str = "127.0.0.1"):
    """Start the gRPC null server in its own process group (a ManagedProcess); returns it once listening."""
    from loadtests.nullserver import start_listening

    return start_listening("loadtests.nullgrpc", [], log_path, host=host, port=port, cpus=cpus,
                           what="null gRPC server", timeout=20.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
