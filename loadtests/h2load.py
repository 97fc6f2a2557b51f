"""The independent gRPC cross-check: h2load (nghttp2's C HTTP/2 load generator, Debian's `nghttp2-client`)
on the same gRPC endpoint, closed loop with N connections and one call in flight on each (`-m1`), the
same length-prefixed request message and metadata, pinned to the generator's cores. Its summary has
no percentiles, so the p50 is taken from its per-request log (`--log-file`: the measured requests,
after its warm-up). tests/test_load_wrk.py checks ours against it, as against wrk for REST.
"""
from __future__ import annotations

import re
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.core.proc import ManagedProcess
from deploy_compare.loadtests.http2 import grpc_message

INSTALL = "apt-get install -y nghttp2-client"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class H2loadResult:
    connections: int
    p50_ms: float  # from the per-request log
    mean_ms: float  # h2load's summary
    rps: float
    seconds: float


def available() -> bool:
    return shutil.which("h2load") is not None


def parse(output: str, log: str, connections: int, seconds: float) -> H2loadResult:
    """h2load's summary (`output`) and per-request log (`log`: start us, HTTP status, duration us)."""
    times = re.search(r"^time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", output, re.M)
    rps = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", output, re.M)
    done = re.search(r"^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                     output, re.M)
    if not times or not rps or not done:
        raise ValueError(f"h2load output without request times, a rate or request counts:\n{output[-1500:]}")
    if int(done.group(2)) or int(done.group(3)) or not int(done.group(1)):
        raise RuntimeError(f"h2load's requests failed ({done.group(0)}):\n{output[-1500:]}")
    durations = [int(row.split("\t")[2]) / 1000.0 for row in log.splitlines() if row.strip()]
    if not durations:
        raise ValueError("h2load's per-request log is empty")
    return H2loadResult(connections=connections, p50_ms=statistics.median(durations),
                        mean_ms=float(times.group(1)) * _UNITS_MS[times.group(2)], rps=float(rps.group(1)),
                        seconds=seconds)


def run_h2load(target: str, method: str, message: bytes, metadata: dict[str, str], *, connections: int,
               seconds: float, work_dir: Path, cpus: set[int] | None = None, warmup_seconds: int = 1) -> H2loadResult:
    """One h2load run of unary calls of `method` on `target` (host:port, plain HTTP/2); bounded wait, always
    stopped. Its first `warmup_seconds` are not measured."""
    if not available():
        raise FileNotFoundError(f"h2load is not installed: {INSTALL}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    data = work_dir / "request.grpc"
    data.write_bytes(grpc_message(message))
    log = work_dir / f"h2load-c{connections}.log"
    requests = work_dir / f"h2load-c{connections}.requests.tsv"
    for old in (log, requests):
        old.unlink(missing_ok=True)
    headers = [f"{k.lower()}: {v}" for k, v in {"content-type": "application/grpc", "te": "trailers",
                                                 **metadata}.items()]
    argv = ["h2load", f"-c{connections}", "-m1", "-t1", f"-D{seconds:g}s", f"--warm-up-time={warmup_seconds}s",
            f"--log-file={requests}", "-d", str(data), *(a for h in headers for a in ("-H", h)), f"http://{target}{method}"]
    ManagedProcess(argv, log, cpus=cpus, name="h2load").run_to_end(timeout=warmup_seconds + seconds + 30)
    return parse(log.read_text(encoding="utf-8", errors="replace"), requests.read_text(encoding="utf-8"),
                 connections, seconds)
