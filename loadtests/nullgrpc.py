"""The gRPC null endpoint: a trivial HTTP/2 server on 127.0.0.1 that answers TorchServe's
`InferenceAPIsService/Predictions` and TF Serving's `PredictionService/Predict` with fixed response
bytes, so the gRPC load generator can be measured against something that costs (almost) nothing.

Raw asyncio protocol speaking just the HTTP/2 a unary call needs (`deploy_compare.loadtests.http2`), like the REST
null endpoint's raw HTTP/1.1: a grpc.aio server took ~0.27 ms of its core per call and topped out near
3,800 calls/s, below what the generator can send from its core, so the generator's capacity could
not be measured against it. The request is not decoded (raw bytes in, fixed bytes out): a method
whose name contains "Error" answers INTERNAL (to exercise error counting), a known predict method its
fixed response, any other method an empty message. Any gRPC client works (grpcio included): its
SETTINGS, PING and WINDOW_UPDATE are answered and honoured; answers wait for the client's window.

    python -m deploy_compare.loadtests.nullgrpc --port 7070 [--host 127.0.0.1]

Start it in its own process (`start_null_grpc_server`), pinned to the server's core.
"""
from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from pathlib import Path

from deploy_compare.loadtests import http2 as h2
from deploy_compare.loadtests.nullserver import WORKER, start_listening

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


def _answer_frames(stream: int, answer: bytes | None) -> tuple[bytes, int]:
    """The whole answer to one call (headers, message, trailers) and its flow-controlled DATA bytes."""
    if answer is None:  # trailers only
        return h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream, _ERROR_BLOCK), 0
    message = h2.grpc_message(answer)
    return (h2.frame(h2.HEADERS, h2.END_HEADERS, stream, _HEAD_BLOCK) + h2.frame(h2.DATA, 0, stream, message)
            + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream, _OK_BLOCK)), len(message)


_HEAD_BLOCK = h2.header_block([(":status", "200"), ("content-type", "application/grpc")])
_OK_BLOCK = h2.header_block([("grpc-status", "0")])
_ERROR_BLOCK = h2.header_block([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "13"),
                                ("grpc-message", "null server: method asked for an error")])


class _NullGrpcProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.preface = False
        self.decoder = h2.HeaderDecoder()
        self.paths: dict[int, bytes] = {}  # open streams: their :path
        self.block, self.block_stream, self.block_ends = b"", 0, False
        self.window = h2.DEFAULT_WINDOW  # the client's connection window for our DATA
        self.waiting: list[tuple[bytes, int]] = []  # answers waiting for the client's window
        self.unacknowledged = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(h2.settings_frame(initial_window_size=h2.MAX_WINDOW)  # type: ignore[attr-defined]
                        + h2.window_update(0, h2.MAX_WINDOW - h2.DEFAULT_WINDOW))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.preface:
            if len(self.buf) < len(h2.PREFACE):
                return
            if bytes(self.buf[:len(h2.PREFACE)]) != h2.PREFACE:
                return self._close()
            del self.buf[:len(h2.PREFACE)]
            self.preface = True
        out = []
        while len(self.buf) >= h2.FRAME_HEAD:
            length, kind, flags, sid = h2.parse_head(self.buf)
            if len(self.buf) < h2.FRAME_HEAD + length:
                break
            payload = bytes(self.buf[h2.FRAME_HEAD:h2.FRAME_HEAD + length])
            del self.buf[:h2.FRAME_HEAD + length]
            if kind == h2.GOAWAY:
                return self._close()
            self._frame(kind, flags, sid, payload, out)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes, out: list[bytes]) -> None:
        if kind == h2.DATA:
            self.unacknowledged += len(payload)
            if self.unacknowledged > h2.MAX_WINDOW // 2:
                out.append(h2.window_update(0, self.unacknowledged))
                self.unacknowledged = 0
            if flags & h2.END_STREAM:
                self._answer(sid, out)
        elif kind in (h2.HEADERS, h2.CONTINUATION):
            if kind == h2.HEADERS:
                self.block, self.block_stream = h2.header_payload(flags, payload), sid
                self.block_ends = bool(flags & h2.END_STREAM)
            else:
                self.block += payload
            if flags & h2.END_HEADERS:
                fields = self.decoder.decode(bytes(self.block))
                self.paths[self.block_stream] = next((v for k, v in fields if k == b":path"), b"")
                if self.block_ends:
                    self._answer(self.block_stream, out)
        elif kind == h2.SETTINGS and not flags & h2.ACK:
            out.append(h2.frame(h2.SETTINGS, h2.ACK, 0))
        elif kind == h2.PING and not flags & h2.ACK:
            out.append(h2.frame(h2.PING, h2.ACK, 0, payload))
        elif kind == h2.WINDOW_UPDATE and sid == 0:
            self.window += int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            self._flush(out)
        elif kind == h2.RST_STREAM:
            self.paths.pop(sid, None)

    def _answer(self, sid: int, out: list[bytes]) -> None:
        path = self.paths.pop(sid, None)
        if path is None:
            return  # reset, or a second END_STREAM
        name = path.decode("latin-1")
        answer = ANSWERS.get(name, None if "Error" in name else b"")
        if WORKER.delay_s > 0 and answer is not None:  # answered one at a time, like the REST null endpoint
            WORKER.later(self._answer_later, _answer_frames(sid, answer))
            return
        self.waiting.append(_answer_frames(sid, answer))
        self._flush(out)

    def _answer_later(self, frames: tuple[bytes, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            out: list[bytes] = []
            self.waiting.append(frames)
            self._flush(out)
            if out:
                self.transport.write(b"".join(out))

    def _flush(self, out: list[bytes]) -> None:
        # answers are far smaller than any stream's initial window; the connection's is what can run out
        while self.waiting and self.waiting[0][1] <= self.window:
            frames, size = self.waiting.pop(0)
            self.window -= size
            out.append(frames)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _serve(host: str, port: int, delay_ms: float = 0.0) -> None:
    WORKER.delay_s = delay_ms / 1000.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_NullGrpcProtocol, host, port, reuse_address=True, backlog=1024)
    print(f"null gRPC server listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def start_null_grpc_server(port: int, log_path: Path, cpus: set[int] | None = None, host: str = "127.0.0.1",
                           delay_ms: float = 0.0):
    """Start the gRPC null server in its own process group (a ManagedProcess); returns it once listening."""
    return start_listening("deploy_compare.loadtests.nullgrpc", ["--delay-ms", str(delay_ms)], log_path, host=host,
                           port=port, cpus=cpus, what="null gRPC server", timeout=20.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer calls after this delay (default 0)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.host, args.port, args.delay_ms))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
