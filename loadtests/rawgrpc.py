"""A cheap gRPC sender: unary calls as pre-built HTTP/2 frames over plain kept-alive connections
(imported only inside a locust process).

Why not grpcio: its synchronous call costs about 0.2 ms of the client's own per request, inside every
figure. Measured against TorchServe's gRPC API at 1 user (server on core 0, client on core 1, h2load
and ours alternated over 5 rounds): h2load's mean 0.78-0.86 ms, grpcio's 1.02-1.08 ms (+25-30%); the
same ~0.2 ms against the null gRPC server, with or without grpcio's gevent integration (with it:
0.50-0.63 ms p50; plain, in a native thread: 0.44-0.54; h2load's mean 0.29-0.32). The pure-Python
`h2` state machine was slower still (0.57-0.62 ms where grpcio took 0.50-0.53).

So a call here is what h2load does: on a connection whose HTTP/2 handshake is done, one `sendall` of a
HEADERS frame (an HPACK block encoded once, without the dynamic table, so every request can reuse it)
and the DATA frame(s) of the length-prefixed message, then frames are read until the stream ends: the
answer's headers and trailers are decoded with `hpack` (the server's dynamic table must be followed),
`grpc-status` decides success, and the clock stops at the trailers, as grpcio's does. One call in
flight per connection (closed loop: one connection per user; open loop: a pool as deep as the calls
in flight, like `h2load -c N -m 1`), waited on as the REST sender's are (`rawhttp.Connection`).

The HTTP/2 the connection needs and nothing more: the client preface and SETTINGS (push off, the
largest stream window) plus a connection WINDOW_UPDATE so the server never waits for our window;
the server's SETTINGS (acknowledged; the stream window and frame size it grants are honoured when a
request is large), PING (answered), WINDOW_UPDATE (credited), RST_STREAM and GOAWAY (the call fails
with them, the connection is not reused). Plain http only (the grpcio sender it replaces was too).
"""
from __future__ import annotations

import struct
from typing import Any

from deploy_compare.loadtests.http2 import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    FRAME_HEAD,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    MAX_WINDOW,
    PING,
    PREFACE,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    HeaderDecoder,
    data_length,
    frame,
    grpc_message,
    header_block,
    header_payload,
    parse_head,
    settings_frame,
    settings_values,
    window_update,
)
from deploy_compare.loadtests.rawhttp import Connection, HttpStatusError, RawSender

LAST_STREAM = 2**31 - 1


def request_block(method: str, authority: str, metadata: list[tuple[str, str]], timeout: float) -> bytes:
    """The request's HPACK block, encoded once for every call (`http2.header_block`)."""
    return header_block([(":method", "POST"), (":scheme", "http"), (":path", method), (":authority", authority),
                         ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "deploy-compare"),
                         ("grpc-timeout", f"{max(1, int(timeout * 1000))}m"), *metadata])


class GrpcStatusError(Exception):
    """A call that ended with a non-OK grpc-status; `code()` is grpc's StatusCode, as grpcio's errors."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"grpc-status {status}: {message}")
        self.status = status

    def code(self) -> Any:
        import grpc

        return next(c for c in grpc.StatusCode if c.value[0] == self.status)


class StreamReset(Exception):
    """The server reset the call's stream (RST_STREAM) or refused it (GOAWAY below its stream id)."""


class _Stream:
    __slots__ = ("id", "window", "rest", "ended", "received", "status", "grpc_status", "grpc_message", "reset")

    def __init__(self, stream_id: int, window: int) -> None:
        self.id, self.window = stream_id, window
        self.rest: memoryview | None = None  # the part of the request message not sent yet
        self.ended = False
        self.received = 0
        self.status = self.grpc_status = None
        self.grpc_message = ""
        self.reset: str | None = None


class Http2:
    """The client side of one HTTP/2 connection carrying one unary call at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.read = conn.reader.exactly
        self.decoder = HeaderDecoder()
        self.send_window = DEFAULT_WINDOW  # what the server lets us send on the connection
        self.stream_window = DEFAULT_WINDOW  # ... and on a new stream (its SETTINGS_INITIAL_WINDOW_SIZE)
        self.max_frame = DEFAULT_FRAME
        self.unacknowledged = 0  # DATA bytes received since our last connection WINDOW_UPDATE
        self.next_id = 1
        self.settled = False  # the server's first SETTINGS arrived
        self.goaway = False
        self.stream: _Stream | None = None
        self.block, self.block_stream, self.block_ends = b"", None, False  # a header block being read

    def handshake(self) -> None:
        self.conn.sendall(PREFACE + settings_frame(enable_push=0, initial_window_size=MAX_WINDOW)
                          + window_update(0, MAX_WINDOW - DEFAULT_WINDOW))
        while not self.settled:
            self._frame()

    @property
    def reusable(self) -> bool:
        return not self.goaway and self.next_id < LAST_STREAM

    def call(self, block: bytes, message: bytes) -> tuple[int, BaseException | None]:
        """One unary call: (response message bytes, the call's error or None)."""
        self.conn.sendall(self.start(block, message))
        return self.finish()

    def start(self, block: bytes, message: bytes) -> bytes:
        """Open the call's stream: the bytes that start it (HEADERS and what flow control lets through of
        the message; `finish` sends the rest as the server's windows open). Touches no socket, so the
        open-loop scheduler thread can start a call and write it itself."""
        st = self.stream = _Stream(self.next_id, self.stream_window)
        self.next_id += 2
        st.rest = memoryview(message)
        return frame(HEADERS, END_HEADERS, st.id, block) + self._data(st)

    def finish(self) -> tuple[int, BaseException | None]:
        """Send what flow control held back, read the answer: (response message bytes, error or None)."""
        st = self.stream
        assert st is not None, "finish() without start()"
        while st.rest is not None and not st.ended:
            self._frame()  # the windows are shut: wait for the server's WINDOW_UPDATE
            if out := self._data(st):
                self.conn.sendall(out)
        while not st.ended:
            self._frame()
        self.stream = None
        return max(0, st.received - 5), self._outcome(st)

    def _data(self, st: _Stream) -> bytes:
        """DATA frames for as much of the message as the windows and the frame size allow (the last one
        ends the stream; an empty message is one empty DATA frame)."""
        out = b""
        while st.rest is not None:
            n = max(0, min(len(st.rest), self.send_window, st.window, self.max_frame))
            last = n == len(st.rest)
            if not n and not last:
                break
            out += frame(DATA, END_STREAM if last else 0, st.id, bytes(st.rest[:n]))
            self.send_window -= n
            st.window -= n
            st.rest = None if last else st.rest[n:]
        return out

    @staticmethod
    def _outcome(st: _Stream) -> BaseException | None:
        if st.reset:
            return StreamReset(st.reset)
        if st.status != 200:
            return HttpStatusError(st.status or 0, st.grpc_message.encode())
        if st.grpc_status is None:
            return GrpcStatusError(13, "the answer ended without a grpc-status")  # INTERNAL, as grpcio
        if st.grpc_status:
            return GrpcStatusError(st.grpc_status, st.grpc_message)
        return None

    def _frame(self) -> None:
        """Read one frame and act on it."""
        length, kind, flags, sid = parse_head(self.read(FRAME_HEAD))
        payload = self.read(length) if length else b""
        st = self.stream if self.stream is not None and sid == self.stream.id else None
        if kind == DATA:
            self.unacknowledged += length
            if self.unacknowledged > MAX_WINDOW // 2:
                self.conn.sendall(window_update(0, self.unacknowledged))
                self.unacknowledged = 0
            if st is not None:
                st.received += data_length(flags, payload)
                st.ended = st.ended or bool(flags & END_STREAM)
        elif kind in (HEADERS, CONTINUATION):
            self._headers(kind, flags, payload, st)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif kind == PING:
            if not flags & ACK:
                self.conn.sendall(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if sid == 0:
                self.send_window += increment
            elif st is not None:
                st.window += increment
        elif kind == RST_STREAM and st is not None:
            st.reset, st.ended = f"RST_STREAM (HTTP/2 error code {int.from_bytes(payload[:4], 'big')})", True
        elif kind == GOAWAY:
            self.goaway = True
            last_id, code = struct.unpack(">II", payload[:8])
            if self.stream is not None and self.stream.id > last_id & 0x7FFFFFFF:
                self.stream.reset = f"GOAWAY (HTTP/2 error code {code}) before this stream was processed"
                self.stream.ended = True
        elif kind == PUSH_PROMISE:
            raise ConnectionError("the server sent PUSH_PROMISE although push was disabled")
        # PRIORITY and unknown frame types are ignored, as HTTP/2 requires

    def _headers(self, kind: int, flags: int, payload: bytes, st: _Stream | None) -> None:
        if kind == HEADERS:
            self.block, self.block_stream = header_payload(flags, payload), st
            self.block_ends = bool(flags & END_STREAM)
        else:
            self.block += payload
        if not flags & END_HEADERS:
            return
        fields = self.decoder.decode(bytes(self.block))
        st = self.block_stream
        if st is None:
            return
        for name, value in fields:
            if name == b":status":
                st.status = int(value)
            elif name == b"grpc-status":
                st.grpc_status = int(value)
            elif name == b"grpc-message":
                st.grpc_message = value.decode("utf-8", "replace")
        st.ended = st.ended or self.block_ends

    def _settings(self, payload: bytes) -> None:
        values = settings_values(payload)
        if INITIAL_WINDOW_SIZE in values:
            if self.stream is not None:
                self.stream.window += values[INITIAL_WINDOW_SIZE] - self.stream_window
            self.stream_window = values[INITIAL_WINDOW_SIZE]
        self.max_frame = values.get(MAX_FRAME_SIZE, self.max_frame)
        self.conn.sendall(frame(SETTINGS, ACK, 0))
        self.settled = True


class RawGrpcSender(RawSender):
    """Unary calls of one method with pre-serialized request messages; fires locust's `request` event."""

    request_type = "grpc"

    def __init__(self, environment: Any, target: str, method: str, requests: list[bytes],
                 metadata: list[tuple[str, str]], name: str, timeout: float = 30.0,
                 max_connections: int | None = None) -> None:
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"a gRPC target is host:port, got {target!r}")
        super().__init__(environment, (host.strip("[]"), int(port)), name,
                         [grpc_message(r) for r in requests], timeout, max_connections=max_connections)
        self.block = request_block(method, target, metadata, timeout)

    def _open(self, conn: Connection) -> None:
        conn.protocol = Http2(conn)
        conn.protocol.handshake()

    def _begin(self, conn: Connection, request: bytes) -> bytes:
        return conn.protocol.start(self.block, request)

    def _end(self, conn: Connection) -> tuple[int, BaseException | None, bool]:
        length, error = conn.protocol.finish()
        return length, error, conn.protocol.reusable
