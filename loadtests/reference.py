"""The machine's reference: one fixed request/answer loop, measured before each endpoint's points and at the
end of the load stage, so a figure's run-to-run difference can be told from the machine's own.

Why: here the machine's speed for work made of system calls and wake-ups moves by tens of percent within a
minute, while a tight CPU loop does not. Measured 2026-12-01 (idle CPUs polling, nothing else running):
the null endpoint on core 0, wrk at 1 connection on core 1, 90 one-second windows: 25,774-44,416 req/s
(median 38,565), in phases of 10-50 s; a pure-Python loop on each core over five minutes: medians within
3%. A TorchServe endpoint's 1-user point is such a loop plus the server's work, so two runs of the same
server met different phases and their p50 at 1 user differed by up to 20% (runs p1/p2). The reference
shows how far the machine itself moved during this stage; it is not used to correct any figure.

What it is: the null endpoint (`deploy_compare.loadtests.nullserver`, pinned to the server's core) and a plain blocking
socket client (a fresh process pinned to the generator's cores) sending one fixed POST at a time for
`REFERENCE_SECONDS`, after a short warm-up. The same loop every time: only the machine changes.
"""
from __future__ import annotations

import contextlib
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from deploy_compare.loadtests.nullserver import OK_ANSWER
from deploy_compare.loadtests.results import MachineReference, ReferenceSample

REFERENCE_SECONDS = 1.0
WARMUP_SECONDS = 0.2
REQUEST = (b"POST /predictions/reference HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: 27\r\n\r\n{\"instances\": [[0.0, 1.0]]}")
LOOP = ("the null endpoint (deploy_compare.loadtests.nullserver) on the server's core, a blocking-socket client on the "
        f"generator's cores, one request at a time, {REFERENCE_SECONDS:g} s after a {WARMUP_SECONDS:g} s warm-up")


def _read_answer(sock: socket.socket, buf: bytearray) -> None:
    """Read one answer of the null server (always the same bytes), leaving nothing behind."""
    while len(buf) < len(OK_ANSWER):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the null endpoint closed the connection")
        buf += chunk
    if not buf.startswith(OK_ANSWER):
        raise ConnectionError(f"unexpected answer from the null endpoint: {bytes(buf[:80])!r}")
    del buf[:len(OK_ANSWER)]


def sample_loop(payload: dict) -> dict:
    """In a fresh process (`deploy_compare.core.proc.run_isolated`): the loop against 127.0.0.1:`port`."""
    port, seconds = int(payload["port"]), float(payload.get("seconds", REFERENCE_SECONDS))
    lat: list[float] = []
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t_warm = time.perf_counter() + float(payload.get("warmup", WARMUP_SECONDS))
        while time.perf_counter() < t_warm:
            sock.sendall(REQUEST)
            _read_answer(sock, buf)
        t0 = time.perf_counter()
        end = t0 + seconds
        while (t := time.perf_counter()) < end:
            sock.sendall(REQUEST)
            _read_answer(sock, buf)
            lat.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
    return {"count": len(lat), "seconds": wall, "p50_ms": statistics.median(lat) * 1000 if lat else 0.0}


class ReferenceProbe:
    """A null endpoint kept up over the stage, sampled on demand (`sample(before)`)."""

    def __init__(self, server_cpus: set[int], generator_cpus: set[int] | None, log_dir: Path) -> None:
        self.cpus, self.log_dir = generator_cpus, Path(log_dir)
        self.record = MachineReference(loop=LOOP, server_cpus=sorted(server_cpus),
                                       generator_cpus=sorted(generator_cpus or ()))
        self._server_cpus = server_cpus
        self._server = None
        self._port = 0

    def sample(self, before: str) -> ReferenceSample | None:
        """One sample (None once sampling has failed: the failure is recorded, the stage goes on)."""
        from deploy_compare.core.proc import run_isolated

        if self.record.failure is not None or self._server is None:
            return None
        t = time.time()
        try:
            r = run_isolated("deploy_compare.loadtests.reference:sample_loop", {"port": self._port}, timeout=30.0,
                             cpus=self.cpus, log_path=self.log_dir / "reference.log")
        except Exception as exc:  # a check beside the figures, not a gate: recorded with its reason
            self.record.failure = f"reference sample before {before} failed: {type(exc).__name__}: {exc}"
            return None
        s = ReferenceSample(before=before, unix=round(t, 3), count=r["count"], seconds=round(r["seconds"], 4),
                            rps=round(r["count"] / r["seconds"], 1) if r["seconds"] else 0.0,
                            p50_ms=round(r["p50_ms"], 4))
        self.record.samples.append(s)
        return s

    @contextlib.contextmanager
    def running(self) -> Iterator[ReferenceProbe]:
        from deploy_compare.loadtests.launch import free_port
        from deploy_compare.loadtests.nullserver import start_null_server

        self._port = free_port()
        try:
            self._server = start_null_server(self._port, self.log_dir / "reference-null.log", cpus=self._server_cpus)
        except Exception as exc:
            self.record.failure = f"the reference's null endpoint did not start: {exc}"
        try:
            yield self
        finally:
            if self._server is not None:
                self._server.stop(timeout=5)
                self._server = None


def reference_line(s: ReferenceSample) -> str:
    return f"machine reference before {s.before}: {s.rps:,.0f} req/s, p50 {s.p50_ms:.3f} ms"
