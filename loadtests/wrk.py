"""The independent cross-check: wrk (a C load generator, `apt-get install -y wrk`) on the same endpoint,
closed loop with N connections, the same POST body and headers (a Lua script), pinned to the
generator's cores. Our p50 should agree with its p50 within a few percent; tests/test_load_wrk.py
checks it.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.core.proc import ManagedProcess

INSTALL = "apt-get install -y wrk"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    connections: int
    p50_ms: float
    rps: float
    seconds: float
    mean_ms: float | None = None  # "Latency Avg" of wrk's thread stats


def available() -> bool:
    return shutil.which("wrk") is not None


def lua_script(body: bytes, headers: dict[str, str]) -> str:
    """wrk's request: POST with this body and headers (Lua long brackets keep the JSON verbatim)."""
    text = body.decode("utf-8")
    level = "=" * next(n for n in range(1, 10) if f"]{'=' * n}]" not in text)
    lines = ["wrk.method = 'POST'", f"wrk.body = [{level}[{text}]{level}]",
             "wrk.headers['Content-Type'] = 'application/json'"]
    lines += [f"wrk.headers[{k!r}] = {v!r}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def parse(output: str, connections: int, seconds: float) -> WrkResult:
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not p50 or not rps:
        raise ValueError(f"wrk output without a p50 or a rate (was --latency given?):\n{output[-1500:]}")
    mean = re.search(r"^\s*Latency\s+([\d.]+)(us|ms|s)\s", output, re.M)
    return WrkResult(connections=connections, p50_ms=float(p50.group(1)) * _UNITS_MS[p50.group(2)],
                     rps=float(rps.group(1)), seconds=seconds,
                     mean_ms=float(mean.group(1)) * _UNITS_MS[mean.group(2)] if mean else None)


def run_wrk(url: str, body: bytes, headers: dict[str, str], *, connections: int, seconds: float, work_dir: Path,
            cpus: set[int] | None = None) -> WrkResult:
    """One wrk run (one thread, `connections` kept-alive connections); bounded wait, always stopped."""
    if not available():
        raise FileNotFoundError(f"wrk is not installed: {INSTALL}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    script = work_dir / "post.lua"
    script.write_text(lua_script(body, headers), encoding="utf-8")
    log = work_dir / f"wrk-c{connections}.log"
    log.unlink(missing_ok=True)
    ManagedProcess(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
                   log, cpus=cpus, name="wrk").run_to_end(timeout=seconds + 30)
    return parse(log.read_text(encoding="utf-8", errors="replace"), connections, seconds)
