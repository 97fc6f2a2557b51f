"""Run a `Plan` in locust processes (never in this one: locust monkey-patches with gevent on import).

`LocustTarget` says how the locust process reaches an endpoint (which locustfile, host, options) and
what it sends (the requests' wire bytes, built here: `deploy_compare.loadtests.requests`; they travel in the plan);
`run_plan` starts `locust --headless` (single process, or a master plus N `--worker` processes, all on
127.0.0.1), pinned to the generator's cores, waits for it (bounded), stops every process it started
and returns the `RawRun` the controller wrote. Headers (which may hold a token) travel in a 0600
file, never on the command line.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from deploy_compare.core.proc import ManagedProcess
from deploy_compare.core.results import from_json_data, save
from deploy_compare.loadtests.payload import build_payload
from deploy_compare.loadtests.plan import Plan, RawRun
from deploy_compare.loadtests.requests import wire_requests
from deploy_compare.serving.endpoint import Endpoint

LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"
# (server, protocol) -> locustfile; "null" and "external" speak TF Serving-style REST
_FILES = {("torchserve", "rest"): "rest.py", ("tfserving", "rest"): "rest.py", ("null", "rest"): "rest.py",
          ("external", "rest"): "rest.py", ("torchserve", "grpc"): "torchserve_grpc.py",
          ("tfserving", "grpc"): "tfserving_grpc.py",
          # Ray Serve's ingress speaks TF Serving's REST and gRPC APIs (serving/rayserve/app.py)
          ("rayserve", "rest"): "rest.py", ("rayserve", "grpc"): "tfserving_grpc.py"}


class LocustFailed(RuntimeError):
    pass


@dataclass
class LocustTarget:
    locustfile: Path
    host: str
    options: list[str]
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a token: never logged
    requests: list[bytes] = field(default_factory=list, repr=False)  # pre-built wire requests (else locust builds)

    @classmethod
    def for_endpoint(cls, endpoint: Endpoint, payload: str, *, twin: str | None = None,
                     source_layout: str | None = None, batch_size: int = 1) -> LocustTarget:
        protocol = endpoint.protocol
        key = (endpoint.server, protocol)
        if key not in _FILES:
            raise ValueError(f"no locustfile for {endpoint.server} over {protocol}; known: {sorted(_FILES)}")
        opts = ["--model-name", endpoint.served_name, "--payload", str(payload), "--layout", endpoint.layout,
                "--batch-size", str(batch_size)]
        if twin:
            opts += ["--twin", twin]
        if source_layout:
            opts += ["--source-layout", source_layout]
        if protocol == "rest":
            parts = urlsplit(endpoint.target)
            host = f"{parts.scheme}://{parts.netloc}"
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            opts += ["--predict-path", path]
        else:
            host = endpoint.target
            if endpoint.signature is not None:
                opts += ["--input-name", endpoint.signature.input_name]
        payload_data = build_payload(payload, twin=twin, layout=endpoint.layout, source_layout=source_layout,
                                     batch_size=batch_size)
        return cls(locustfile=LOCUSTFILES / _FILES[key], host=host, options=opts, headers=dict(endpoint.headers),
                   requests=wire_requests(endpoint, payload_data.batches()))


def _locust_argv(target: LocustTarget, headers_file: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(target.locustfile), "--host", target.host, *target.options]
    if headers_file is not None:
        argv += ["--headers-file", str(headers_file)]
    return argv


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind 0)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningLocust:
    """A started locust run (`started`): its head process and where it writes its `RawRun`."""
    head: ManagedProcess
    out: Path
    target: LocustTarget

    def alive(self) -> bool:
        return self.head.popen is not None and self.head.popen.poll() is None

    def result(self, timed_out: bool) -> RawRun:
        """The raw run it wrote; raises `LocustFailed` with the log's tail when it wrote none."""
        if not self.out.exists():
            assert self.head.popen is not None
            why = "did not finish in time" if timed_out else f"exited with code {self.head.popen.returncode}"
            raise LocustFailed(f"locust ({self.target.locustfile.name}) {why} without results; log "
                               f"{self.head.log_path}:\n{self.head.log_tail(3000)}")
        return from_json_data(RawRun, json.loads(self.out.read_text(encoding="utf-8")))


@contextmanager
def started(plan: Plan, target: LocustTarget, *, log_dir: Path, cpus: set[int] | None = None,
            workers: int = 0, name: str = "locust") -> Iterator[RunningLocust]:
    """Start `plan` against `target` in locust processes (with `workers` > 0: a master and that many workers
    on loopback); every process is stopped when the block exits, however it exits."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[ManagedProcess] = []
    with tempfile.TemporaryDirectory(prefix="dc-locust-") as tmp:
        out = Path(tmp) / "raw.json"
        plan_path = Path(tmp) / "plan.json"
        plan.out = str(out)
        plan.set_requests(target.requests)
        save(plan, plan_path)
        headers_file = None
        if target.headers:
            headers_file = Path(tmp) / "headers.json"
            fd = os.open(headers_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(target.headers, fh)
        base = _locust_argv(target, headers_file)
        master = base + ["--headless", "-u", "0", "-r", "1", "--only-summary", "--loglevel", "WARNING",
                         "--dc-plan", str(plan_path), "--dc-out", str(out)]
        if workers:
            port = free_port()
            master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                       "--expect-workers", str(workers), "--expect-workers-max-wait", "60"]
        try:
            head = ManagedProcess(master, log_dir / f"{name}.log", cpus=cpus, name=f"{name} (locust)").start()
            procs.append(head)
            for i in range(workers):
                argv = base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                               "--loglevel", "WARNING", "--dc-plan", str(plan_path)]  # for its requests
                procs.append(ManagedProcess(argv, log_dir / f"{name}-worker{i}.log", cpus=cpus,
                                            name=f"{name} (locust worker {i})").start())
            yield RunningLocust(head=head, out=out, target=target)
        finally:
            for p in reversed(procs):
                p.stop(timeout=10)


def run_plan(plan: Plan, target: LocustTarget, *, log_dir: Path, cpus: set[int] | None = None,
             workers: int = 0, name: str = "locust", timeout: float) -> RawRun:
    """Run `plan` against `target` (`started`) and wait for it, bounded by `timeout` (the plan's mode knows
    how long its steps may take). Returns the raw run; its `error` says if the locust side failed part-way
    (points so far are kept). Raises `LocustFailed` when locust produced no result at all (with the log's tail).
    """
    with started(plan, target, log_dir=log_dir, cpus=cpus, workers=workers, name=name) as run:
        deadline = time.monotonic() + timeout
        while run.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        timed_out = run.alive()
        if timed_out:  # stop it before reading what it wrote (the block's exit would, after the folder is gone)
            run.head.stop(timeout=10)
        return run.result(timed_out)
