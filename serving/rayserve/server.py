"""Ray Serve behind the `Server` lifecycle (`main.py` is the process it launches, `app.py` the application).

Natively the launcher runs `python -m deploy_compare.serving.rayserve.main` as one process group: the
driver starts `ray start --head --block`, whose GCS, raylet, agents and workers all stay in that group
(checked: `RayServe.stray_processes`), so the group stop and the ownership watchdog (a SIGKILL of the CLI
included) end every Ray process. Ray's session folder (logs, sockets) is a private temporary folder
tracked like TorchServe's state folder.

Loopback: every Ray listener can be kept on 127.0.0.1 (see `config.py`) except Serve's gRPC proxy, which
Ray 2.60 binds to `[::]:<port>` unconditionally (ray/serve/_private/grpc_util.py, `start_grpc_server`).
So native Ray Serve is refused unless public listeners are allowed (`--allow-public-bind`), and `auto`
picks the container, whose ports are published on 127.0.0.1 only.
"""
from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

import requests

from deploy_compare.core import ownership
from deploy_compare.core.config import ServeSettings
from deploy_compare.core.kinds import LauncherChoice
from deploy_compare.serving.base import SERVERS, Launcher, LaunchSpec, Server
from deploy_compare.serving.catalog import ServedModel
from deploy_compare.serving.endpoint import Endpoint, TensorSignature
from deploy_compare.serving.images import TOOLKIT_IMAGE
from deploy_compare.serving.rayserve.config import OBJECT_STORE_BYTES, WORKER_PORTS, ModelSpec, RayServeConfig

VERSION = "2.60.0"  # ray[serve] in requirements.lock
READY_TIMEOUT_S = 360.0
# Ray Serve's own defaults: docs/ray-serve.md has what each latency setting tried here changed
DEFAULT_RAY_SETTINGS: dict[str, str] = {}
SHM_MARGIN_BYTES = 64 * 1024 * 1024  # /dev/shm beside the object store (Ray's own checks, the runtimes' use)
CONTAINER_STATE = "/dc"  # the state folder inside the container (short: Ray's socket paths must stay < 108 bytes)


def free_port_range(count: int, low: int = 20000, high: int = 60000, host: str = "127.0.0.1") -> tuple[int, int]:
    """`count` consecutive ports free on `host` now (bounded search), as (first, last)."""
    import random

    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high - count)
        held = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(s)
                s.bind((host, port))
            return base, base + count - 1
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found on {host} between {low} and {high}")


@SERVERS.add
class RayServe(Server):
    name = "rayserve"
    binary = "ray"
    install_native = f"pip install 'ray[serve]=={VERSION}' (in requirements.lock: make install)"
    image = TOOLKIT_IMAGE  # the toolkit image holds ray[serve] (requirements.lock)
    image_enable = f"make images (builds {TOOLKIT_IMAGE} offline, with ray[serve]=={VERSION})"
    native_loopback = False
    # run without being named only where containers were asked for: `auto` (the default quick run) would pick the
    # container too, and Ray's start (~50-130 s, docs/ray-serve.md) does not fit the quick run's 10 minutes;
    # `--servers rayserve` runs it under any launcher
    default_launchers = (LauncherChoice.DOCKER, LauncherChoice.BOTH)
    public_listeners: ClassVar[str] = (
        "Ray Serve 2.60 binds its gRPC proxy to [::]:<grpc port> and every Serve actor's inter-deployment gRPC "
        "server to [::]:<random port> (ray/serve/_private/grpc_util.py, replica.py: no host setting); the Ray "
        "core listeners (GCS, raylet, agents, workers) and Serve's HTTP proxy are kept on 127.0.0.1")
    fatal_log = (r"(?m)^.*(?:deploy-compare: (?:`ray start|could not connect)|Address already in use|"
                 r"Failed to bind|RayServeException|DeploymentUnavailableError|No module named 'ray').*$",)
    # the ports published by a container (the others stay inside its network namespace)
    published: ClassVar[tuple[str, ...]] = ("http", "grpc")

    def __init__(self, launcher: Launcher, settings: ServeSettings, models: list[ServedModel], *args: object,
                 **kwargs: object) -> None:
        super().__init__(launcher, settings, models, *args, **kwargs)  # type: ignore[arg-type]
        self.state_dir: Path | None = None
        self.config: RayServeConfig | None = None
        # Ray / Ray Serve settings given as environment variables (RAY_SERVE_*), recorded with the results;
        # docs/ray-serve.md measures the ones a Ray user would try for latency
        self.ray_settings: dict[str, str] = dict(DEFAULT_RAY_SETTINGS)

    def prepare(self) -> LaunchSpec:
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="dc-ray-"))
            ownership.track_folder(self.state_dir)
        native = self.launcher.name == "native"
        mounts = {str(self.state_dir): CONTAINER_STATE}
        for m in self.models.values():
            mounts.setdefault(str(m.path.parent), f"/models/{m.served_name}")
        seen = lambda p: self.launcher.path(p, mounts)
        low, high = free_port_range(WORKER_PORTS) if native else (20000, 20000 + WORKER_PORTS - 1)
        self.config = RayServeConfig(
            # every Ray listener on 127.0.0.1 (single-node mode), in a container too: with the node on the container's
            # own address (`node_ip="container"`) the head did not come up within 300 s on this loaded host, twice;
            # so in a container Ray's metrics export (bound to the node address) is not reachable from the host
            node_ip="127.0.0.1", single_node=True, http_host=self.launcher.bind_host,
            ports=self.ports, worker_ports=(low, high),
            temp_dir=seen(self.state_dir / "ray"), threads=self.settings.threads, env=dict(self.ray_settings),
            models=[ModelSpec(name=name, format=m.format, path=seen(m.path), layout=m.layout,
                              input_shape=list(m.input_shape), dtype=m.input_dtype, input_name=m.input_name,
                              output_name=m.output_name) for name, m in self.models.items()])
        cfg = self.config.write(self.state_dir / "rayserve.json")
        args = ["-m", "deploy_compare.serving.rayserve.main", seen(cfg)]
        return LaunchSpec(name="rayserve", argv=[sys.executable, *args], image=self.image, command=["python", *args],
                          ports={r: p for r, p in self.ports.items() if r in self.published}, mounts=mounts,
                          writable={str(self.state_dir)}, env={"HOME": seen(self.state_dir)}, cwd=self.state_dir,
                          container_cwd=CONTAINER_STATE, cpus=self.cpus,
                          # Ray's object store in /dev/shm (the engine's 64 MB default is below its 75 MiB minimum:
                          # Ray then put it in a file of the state folder and warned it "will harm performance")
                          shm_size=OBJECT_STORE_BYTES + SHM_MARGIN_BYTES)

    def wait_ready(self, timeout: float, poll: float = 0.5) -> float:
        """At least `READY_TIMEOUT_S`: Ray's head, controller, proxy and one worker process per deployment start
        in turn (8 s for one model on an idle machine; 100-180 s for two on this shared, loaded one)."""
        return super().wait_ready(max(timeout, READY_TIMEOUT_S), poll)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.state_dir is not None:
                # Ray's own logs (GCS, raylet, proxies, replicas) are kept beside the server's log
                # (by name: `session_latest` links to the path the server saw, a container's own)
                sessions = sorted((self.state_dir / "ray").glob("session_2*/logs"))
                session_logs = sessions[-1] if sessions else None
                if session_logs is not None:
                    keep = self.log_path.parent / f"{self.log_path.stem}-ray-logs"
                    shutil.rmtree(keep, ignore_errors=True)
                    shutil.copytree(session_logs, keep, symlinks=False, ignore_dangling_symlinks=True,
                                    ignore=shutil.ignore_patterns("*.sock"))
                shutil.rmtree(self.state_dir, ignore_errors=True)
                ownership.untrack_folder(self.state_dir)

    def metrics_url(self) -> str:
        """Ray's Prometheus export natively; "" in a container (bound to the container's loopback, see prepare)."""
        return f"http://127.0.0.1:{self.ports['metrics']}/metrics" if self.launcher.name == "native" else ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['http']}{path}"

    def status(self, name: str) -> dict:
        resp = requests.get(self.url(f"/v1/models/{name}"), timeout=2)
        resp.raise_for_status()
        return resp.json()

    def healthy(self) -> bool:
        try:
            return all(self.status(name)["model_version_status"][0]["state"] == "AVAILABLE" for name in self.models)
        except (requests.RequestException, ValueError, KeyError, IndexError):
            return False

    def model_load_seconds(self) -> dict[str, float]:
        """Artifact load time per model, timed in its replica around the runtime's `load` (ingress status API)."""
        return {name: float(self.status(name)["deploy_compare"]["load_seconds"]) for name in self.models}

    def replica_pids(self) -> dict[str, int]:
        """Host pid of each model's replica (natively; inside a container these are the container's pids)."""
        return {name: int(self.status(name)["deploy_compare"]["pid"]) for name in self.models}

    def endpoints(self) -> list[Endpoint]:
        out = []
        for name, m in self.models.items():
            common = dict(server="rayserve", model=m.twin, served_name=name, layout=m.layout,
                          server_pids=self.pids(), server_cpus=sorted(self.cpus or ()),
                          settings={**self.record(), "format": m.format},
                          metrics_url=self.metrics_url(),
                          signature=TensorSignature(input_name=m.input_name, output_name=m.output_name))
            stack = m.stack("rayserve")
            out.append(Endpoint(stack=stack, protocol="rest", target=self.url(f"/v1/models/{name}:predict"), **common))
            out.append(Endpoint(stack=stack, protocol="grpc", target=f"127.0.0.1:{self.ports['grpc']}", **common))
        return out

    def record(self) -> dict[str, object]:
        cfg = self.config
        return {"server": self.name, "version": VERSION, "launcher": self.launcher.name, "ports": dict(self.ports),
                "cpus": sorted(self.cpus or ()), "threads": self.settings.threads,
                **({"num_replicas": cfg.num_replicas, "max_ongoing_requests": cfg.max_ongoing_requests,
                    "replica_num_cpus": cfg.replica_num_cpus, "worker_ports": list(cfg.worker_ports),
                    "single_node": cfg.single_node, "include_dashboard": cfg.include_dashboard,
                    "ray_env": cfg.ray_env(), "ingress": "tfserving-api (REST + gRPC, one hop to the model)"}
                   if cfg else {})}
