"""Ray Serve's settings for one run, as typed data written to `rayserve.json` and read by `main.py`
inside the server's process group (natively or in a container).

Listeners. `ray start --head` opens about a dozen listeners besides Serve's two: the GCS, the raylet's node
manager and object manager, every core worker's gRPC server (one per worker and driver, from the worker port
range), the Ray client server, the dashboard agent (HTTP, gRPC, Prometheus export), the runtime-env agent,
and the metrics ports of the autoscaler monitor (44217) and of the headless dashboard (44227). Measured here
(Ray 2.60, Linux): with `--node-ip-address=127.0.0.1` alone, Ray replaces the loopback address by the
host's routable one (`services.resolve_ip_for_localhost`) and the GCS, raylet and agents bind 0.0.0.0 or
the host's address. With `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (Ray's single-node mode, its default on
macOS and Windows) the node address stays 127.0.0.1 and every listener binds it; each port is set
explicitly (`ports`) so that two instances on one host never meet on Ray's fixed defaults. The launcher
still checks the socket list after start (`server.RayServe.listeners`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

INGRESS = "tfserving-api"  # the application's ingress deployment (REST and gRPC)
APP = "deploy-compare"
GRPC_SERVICER = "deploy_compare.serving.rayserve.protos.add_PredictionServiceServicer_to_server"  # protos.py
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's minimum is 75 MiB
WORKER_PORTS = 32  # core workers (controller, proxy, ingress, one per model, driver, prestarted) need one each


@dataclass(frozen=True)
class ModelSpec:
    """One deployment: the artifact (path as the server sees it) and its input signature."""

    name: str  # served name, e.g. mlp-onnx-torch
    format: str
    path: str
    layout: str
    input_shape: list[int]
    dtype: str
    input_name: str
    output_name: str


@dataclass(frozen=True)
class RayServeConfig:
    node_ip: str  # 127.0.0.1 natively; "container": the container's own address (main.py resolves it)
    http_host: str  # Serve's HTTP proxy bind address
    ports: dict[str, int]
    worker_ports: tuple[int, int]  # min, max of Ray's worker port range
    temp_dir: str  # Ray's session folder root (logs, sockets): short, private to this server
    models: list[ModelSpec]
    threads: int = 1  # intra-op threads per model replica
    num_replicas: int = 1
    replica_num_cpus: float = 0.0  # Ray's logical CPUs per replica (placement only; threads are set above)
    max_ongoing_requests: int = 5  # Ray Serve 2.60's default
    include_dashboard: bool = False
    single_node: bool = True  # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: keeps every Ray listener on node_ip
    env: dict[str, str] = field(default_factory=dict)  # extra Ray settings (RAY_* / RAY_SERVE_* variables)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> RayServeConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["models"] = [ModelSpec(**m) for m in data["models"]]
        data["worker_ports"] = tuple(data["worker_ports"])
        return cls(**data)

    def ray_env(self) -> dict[str, str]:
        """Environment of `ray start` (inherited by every Ray process it starts)."""
        p = self.ports
        env = {"RAY_USAGE_STATS_ENABLED": "0", "AUTOSCALER_METRIC_PORT": str(p["autoscaler_metrics"]),
               "DASHBOARD_METRIC_PORT": str(p["dashboard_metrics"]),
               "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        # on a loaded core Serve's proxy took > 15 s to report ready (importing TensorFlow with TF Serving's
        # protos, before protos.py), and Serve's defaults (5 s ready check, 10 s health check, 3 strikes)
        # killed and restarted it in a loop
        env |= {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "120", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
                # Ray pushes metrics to its Prometheus export every 10 s by default: too coarse for the
                # load points' windows (the metrics sampler scrapes every 0.5 s)
                "RAY_metrics_report_interval_ms": "1000",
                # the GCS's wait for the raylet to register (its message names it; 30 s missed on a loaded core)
                "RAY_raylet_start_wait_time_s": "300"}
        if self.single_node:
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        return {**env, **self.env}

    def ray_start_argv(self) -> list[str]:
        """`ray start --head --block` with every address and port Ray takes pointed at `node_ip` / `ports`."""
        p = self.ports
        return ["start", "--head", "--block", "--disable-usage-stats", f"--node-ip-address={self.node_ip}",
                f"--port={p['gcs']}", f"--node-manager-port={p['node_manager']}",
                f"--object-manager-port={p['object_manager']}", f"--ray-client-server-port={p['client_server']}",
                f"--min-worker-port={self.worker_ports[0]}", f"--max-worker-port={self.worker_ports[1]}",
                f"--include-dashboard={str(self.include_dashboard).lower()}", f"--dashboard-host={self.node_ip}",
                f"--dashboard-port={p['dashboard']}", f"--dashboard-agent-listen-port={p['dashboard_agent']}",
                f"--dashboard-agent-grpc-port={p['dashboard_agent_grpc']}",
                f"--runtime-env-agent-port={p['runtime_env_agent']}", f"--metrics-export-port={p['metrics']}",
                f"--temp-dir={self.temp_dir}", "--include-log-monitor=false", "--num-cpus=1",
                # requests and answers are small and travel inline, not through the object store; by default
                # it takes 30% of RAM, and in a container (64 MB /dev/shm) a file of that size in temp_dir
                f"--object-store-memory={OBJECT_STORE_BYTES}"]
