"""The few pieces of HTTP/2 (RFC 9113) that a unary gRPC call needs, shared by the raw gRPC sender
(`loadtests.rawgrpc`, client side) and the gRPC null endpoint (`loadtests.nullgrpc`, server side):
frame constants and serialization, gRPC's length-prefixed message, header blocks encoded once
without the dynamic table, and a header decoder that skips the work for a repeated block.
HPACK itself is the `hpack` library's. No gevent, no asyncio here: both sides import it."""
from __future__ import annotations

import struct
from typing import Any

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
ENABLE_PUSH, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 2, 4, 5
DEFAULT_WINDOW, DEFAULT_FRAME = 65535, 16384
MAX_WINDOW = 2**31 - 1
FRAME_HEAD = 9

_HEAD = struct.Struct(">BHBBI")  # 24-bit length (as 8 + 16 bits), type, flags, stream id


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, kind, flags, stream) + payload


def parse_head(head: bytes) -> tuple[int, int, int, int]:
    """(payload length, type, flags, stream id) of a 9-byte frame header."""
    return (head[0] << 16 | head[1] << 8 | head[2], head[3], head[4],
            int.from_bytes(head[5:9], "big") & 0x7FFFFFFF)


def settings_frame(**values: int) -> bytes:
    ids = {"enable_push": ENABLE_PUSH, "initial_window_size": INITIAL_WINDOW_SIZE, "max_frame_size": MAX_FRAME_SIZE}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def settings_values(payload: bytes) -> dict[int, int]:
    return dict(struct.unpack_from(">HI", payload, at) for at in range(0, len(payload) - 5, 6))


def header_payload(flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS frame (without its padding and priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if flags & PRIORITY_FLAG:
        start += 5
    return payload[start:end]


def data_length(flags: int, payload: bytes) -> int:
    """Bytes of data in a DATA frame (without its padding)."""
    return len(payload) - (payload[0] + 1 if flags & PADDED else 0)


def grpc_message(message: bytes) -> bytes:
    """gRPC's length-prefixed message: not compressed, 4-byte big-endian length, the bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """An HPACK block with no dynamic-table entries (never-indexed literals and static-table indices), so
    the same bytes stay valid for every request or answer on every connection."""
    import hpack

    encoder = hpack.Encoder()
    block = encoder.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers])
    if encoder.header_table.dynamic_entries:
        raise AssertionError("a reusable header block must not use the dynamic table")
    return block


class HeaderDecoder:
    """HPACK decoding of the peer's header blocks. Every block must be decoded, in order: the decoder
    follows the peer's dynamic table. A block that left the table as it was (a repeated answer's:
    indexed fields and unindexed literals) decodes the same while the table stays so: it is
    remembered, and forgotten when a block changes the table. That saves hpack's ~8 us per block."""

    def __init__(self) -> None:
        import hpack

        self.decoder = hpack.Decoder()
        self.known: dict[bytes, list[tuple[bytes, bytes]]] = {}

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        fields = self.known.get(block)
        if fields is None:
            before = self._state()
            fields = self.decoder.decode(block, raw=True)
            after = self._state()
            if after[:2] == before[:2] and after[2] is before[2]:
                self.known[block] = fields
            else:
                self.known.clear()
        return fields

    def _state(self) -> tuple[int, int, Any]:
        table = self.decoder.header_table
        entries = table.dynamic_entries
        return len(entries), table.maxsize, entries[0] if entries else None  # the newest entry, by identity
