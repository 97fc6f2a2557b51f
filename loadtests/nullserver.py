"""The null endpoint: a trivial HTTP/1.1 server on 127.0.0.1 that answers every POST with a fixed
`{"predictions": ...}` body, so the load generator can be measured against something that costs
(almost) nothing. Used once per run to give the generator's headroom, and in tests.

Raw asyncio protocol (no framework): keep-alive, Content-Length bodies, pipelining-safe. A path
containing "error" answers HTTP 500 (to exercise error counting); GET answers a health document.

    python -m deploy_compare.loadtests.nullserver --port 8080 [--host 127.0.0.1]

Start it in its own process (`start_null_server`), pinned to the server's core.
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path

_BODY = b'{"predictions": [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]]}'
OK_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_BODY)) + _BODY
_ERR_BODY = b'{"error": "null server: path asked for an error"}'
_ERR = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(_ERR_BODY)) + _ERR_BODY
_HEALTH_BODY = b'{"status": "Healthy"}'
_HEALTH = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(_HEALTH_BODY)) + _HEALTH_BODY
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_BODY = 64 * 1024 * 1024


class SimulatedWorker:
    """With a delay, answers are produced one at a time, `delay_s` each (a stand-in for a ~1 ms model behind
    one worker, as TorchServe serves a model with one worker): they leave spaced like a real server's.
    One per null server process (REST and gRPC alike)."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.free_at = 0.0  # loop time when the worker is free again

    def later(self, callback, *args) -> None:
        """Run `callback(*args)` when the worker has served this request after those before it."""
        loop = asyncio.get_running_loop()
        self.free_at = max(loop.time(), self.free_at) + self.delay_s
        loop.call_at(self.free_at, callback, *args)


WORKER = SimulatedWorker()


class _NullProtocol(asyncio.Protocol):

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    try:
                        length = int(value.strip())
                    except ValueError:
                        length = -1
            if length < 0 or length > MAX_BODY:
                assert self.transport is not None
                self.transport.write(_BAD)
                self.transport.close()
                return
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[:end + 4 + length]
            request_line = head.split(b"\r\n", 1)[0]
            assert self.transport is not None
            if request_line.startswith(b"GET"):
                self.transport.write(_HEALTH)
            elif b"error" in request_line:
                self.transport.write(_ERR)
            elif WORKER.delay_s > 0:
                WORKER.later(self._answer, OK_ANSWER)
            else:
                self.transport.write(OK_ANSWER)

    def _answer(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def _serve(host: str, port: int, delay_ms: float = 0.0) -> None:
    WORKER.delay_s = delay_ms / 1000.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_NullProtocol, host, port, reuse_address=True, backlog=1024)
    print(f"null server listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    """Bounded readiness poll: a TCP connect that succeeds."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"null server on {host}:{port} did not listen within {timeout}s ({last})")


def start_listening(module: str, args: list[str], log_path: Path, *, host: str, port: int, cpus: set[int] | None,
                    what: str, timeout: float = 10.0):
    """Start `python -m module --host H --port P ARGS` in its own process group (a ManagedProcess) and
    return it once the port accepts connections; stopped, with its log's tail in the error, if it does not."""
    from deploy_compare.core.proc import ManagedProcess

    proc = ManagedProcess([sys.executable, "-m", module, "--host", host, "--port", str(port), *args], log_path,
                          cpus=cpus, name=module.rsplit(".", 1)[-1]).start()
    try:
        wait_listening(host, port, timeout=timeout)
    except BaseException:
        tail = proc.log_tail(2000)
        proc.stop()
        raise RuntimeError(f"{what} failed to start on {host}:{port}; log {log_path}:\n{tail}") from None
    return proc


def start_null_server(port: int, log_path: Path, cpus: set[int] | None = None, host: str = "127.0.0.1",
                      delay_ms: float = 0.0):
    """Start the null server in its own process group (a ManagedProcess); returns it once listening."""
    return start_listening("deploy_compare.loadtests.nullserver", ["--delay-ms", str(delay_ms)], log_path, host=host,
                           port=port, cpus=cpus, what="null server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer POSTs after this delay (default 0)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.host, args.port, args.delay_ms))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
