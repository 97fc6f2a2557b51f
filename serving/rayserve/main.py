"""The Ray Serve server process: `python -m deploy_compare.serving.rayserve.main rayserve.json`.

It starts a local Ray head with `ray start --head --block` (a child in this process's group: every Ray
daemon and worker it starts stays in the group, so the launcher's group stop and the ownership watchdog
end them all), connects as the driver, starts Serve's HTTP and gRPC proxies, deploys the application
(`app.build`), prints `deploy-compare: ready` and waits on the head. SIGTERM or SIGINT stops the head (Ray
stops its own processes) and then this process. The same command runs natively and in the container.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from deploy_compare.serving.rayserve.config import APP, GRPC_SERVICER, RayServeConfig

READY_LINE = "deploy-compare: ray serve ready"
CONNECT_TIMEOUT_S = 300.0  # per head attempt: on a loaded core the head alone took > 90 s
STOP_GRACE_S = 3.0
HEAD_ATTEMPTS = 3


def _start_head(config: RayServeConfig) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "ray"), *config.ray_start_argv()],
                            stdin=subprocess.DEVNULL)


def _kill_leftovers() -> None:
    """What a failed `ray start` left (its GCS, agents): every other process of this session but PID 1."""
    import psutil

    me, sid = os.getpid(), os.getsid(0)
    for p in psutil.process_iter(["pid"]):
        try:
            if p.info["pid"] not in (me, 1) and os.getsid(p.info["pid"]) == sid:
                p.kill()
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    time.sleep(1.0)


def _connect(config: RayServeConfig, head: subprocess.Popen) -> subprocess.Popen:
    """Connect the driver, restarting the head (at most `HEAD_ATTEMPTS` times) when it failed to start: Ray
    gives its raylet a hard-coded 30 s to register with the GCS (ray/_private/node.py), which a loaded core
    missed here (the raylet waits for the dashboard agent, a Python process, to write its port file)."""
    import ray

    address = f"{config.node_ip}:{config.ports['gcs']}"
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    attempts = 1
    while True:
        if head.poll() is not None:
            if attempts >= HEAD_ATTEMPTS:
                sys.exit(f"deploy-compare: `ray start --head` exited with {head.returncode} before the driver "
                         f"connected ({attempts} attempts)")
            print(f"deploy-compare: the Ray head exited with {head.returncode}; starting it again", flush=True)
            _kill_leftovers()
            head, attempts, deadline = _start_head(config), attempts + 1, time.monotonic() + CONNECT_TIMEOUT_S
            continue
        try:
            ray.init(address=address, namespace="deploy-compare", log_to_driver=False, logging_level="WARNING")
            return head
        except (ConnectionError, RuntimeError) as exc:
            if time.monotonic() > deadline:
                sys.exit(f"deploy-compare: could not connect to Ray at {address} within "
                         f"{CONNECT_TIMEOUT_S:.0f} s: {exc}")
            time.sleep(0.5)


def main(config_path: str) -> int:
    config = RayServeConfig.read(Path(config_path))
    if config.node_ip == "container":  # the container's address on its network (Docker maps its hostname to it)
        config = replace(config, node_ip=socket.gethostbyname(socket.gethostname()))
    os.environ.update(config.ray_env())  # read by ray at import (single-node mode) and by the head's children
    head = _start_head(config)

    def _stop(signum: int, frame: object) -> None:
        """`ray start --block` stops its daemons one by one, each with its own grace (> 20 s measured here);
        nothing of a serving-only Ray instance needs flushing, so after a short grace the group is killed."""
        head.terminate()
        try:
            head.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(os.getpgrp(), signal.SIGKILL)

    t0 = time.perf_counter()
    head = _connect(config, head)
    # after ray.init, which installs a SIGTERM handler of its own in a driver
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    from ray import serve
    from ray.serve.config import HTTPOptions, gRPCOptions

    from deploy_compare.serving.rayserve.app import build

    t1 = time.perf_counter()
    serve.start(http_options=HTTPOptions(host=config.http_host, port=config.ports["http"]),
                grpc_options=gRPCOptions(port=config.ports["grpc"], grpc_servicer_functions=[GRPC_SERVICER]))
    serve.run(build(config), name=APP, route_prefix="/", blocking=False)
    t2 = time.perf_counter()
    print(f"{READY_LINE}: ray head {t1 - t0:.2f} s, serve + deployments {t2 - t1:.2f} s", flush=True)
    return head.wait()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m deploy_compare.serving.rayserve.main RAYSERVE_JSON")
    sys.exit(main(sys.argv[1]))
