"""TorchServe behind the `Server` lifecycle: archives built from verified artifacts, a per-run
`config.properties`, token authorization on, health = ping + every model with a READY worker.

The server's working directory is a private temporary folder (mode 0700) outside the run folder:
TorchServe writes its token file `key_file.json` there, so no secret lands in the run's logs or
results; clients read the token from that file (`key_file` property) at run time.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import requests

from deploy_compare.core import ownership, proc
from deploy_compare.core.kinds import ServerLogging
from deploy_compare.serving.base import SERVERS, LaunchSpec, Server
from deploy_compare.serving.catalog import CONTAINER_PATHS
from deploy_compare.serving.endpoint import Endpoint
from deploy_compare.serving.images import OFFICIAL_TORCHSERVE, TORCHSERVE_IMAGE
from deploy_compare.serving.metrics import scrape
from deploy_compare.serving.results import WorkerMemory
from deploy_compare.serving.torchserve.archive import prepare_store
from deploy_compare.serving.torchserve.config import METRICS_YAML, SERVING_LOG4J2, TorchServeConfig

VERSION = "0.12.0"


@SERVERS.add
class TorchServe(Server):
    name = "torchserve"
    binary = "torchserve"
    install_native = f"pip install torchserve=={VERSION} torch-model-archiver=={VERSION} pyyaml (and Java 17)"
    # built here by `make images` (or the official image, tagged so): TorchServe, torch CPU, onnxruntime, Java 17
    image = TORCHSERVE_IMAGE
    image_enable = (f"make images (builds {TORCHSERVE_IMAGE} offline; where a registry is reachable it tags "
                    f"{OFFICIAL_TORCHSERVE} instead)")
    fatal_log = (r"(?m)^.*(?:java\.net\.BindException|Address already in use|Failed to load model|"
                 r"Load model failed|Invalid model|ModelServer failed to start|"
                 r"Exception in thread \"main\").*$",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # private, holds the key file: made by `prepare`, removed by `stop` (or, if this process dies
        # first, by its ownership watchdog); a server that is never started leaves nothing
        self.state_dir: Path | None = None
        self.config: TorchServeConfig | None = None
        self.mars: dict[str, str] = {}  # served name -> sha256 of its .mar

    # --- configuration ---
    def prepare(self) -> LaunchSpec:
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="dc-torchserve-"))
            os.chmod(self.state_dir, 0o700)
            ownership.track_folder(self.state_dir)
        self.store, self.mars = prepare_store(list(self.models.values()), self.store, self.settings.threads,
                                              self.published_store)
        (self.state_dir / "tmp").mkdir(exist_ok=True)
        ts_logs = self.log_path.parent / self.log_path.stem  # logs/torchserve/ (logs/torchserve-docker/ side by side)
        ts_logs.mkdir(parents=True, exist_ok=True)
        paths = CONTAINER_PATHS["torchserve"]
        mounts = {str(self.store): paths["model_store"], str(self.state_dir): paths["state"],
                  str(ts_logs): "/home/model-server/logs"}
        seen = lambda p: self.launcher.path(p, mounts)
        metrics_yaml = self.state_dir / "metrics.yaml"  # per-request times as histograms (see config.py)
        metrics_yaml.write_text(METRICS_YAML, encoding="utf-8")
        self.config = TorchServeConfig(
            bind_host=self.launcher.bind_host, ports=self.ports, model_store=seen(self.store),
            models={name: f"{name}.mar" for name in self.models}, workers=self.settings.workers,
            netty_threads=self.settings.threads, batch_size=self.settings.batch_size,
            max_batch_delay_ms=self.settings.max_batch_delay_ms, metrics_config=seen(metrics_yaml),
            startup_timeout_s=int(self.settings.ready_timeout_s))
        cfg = self.state_dir / "config.properties"
        cfg.write_text(self.config.render(), encoding="utf-8")
        args = ["--foreground", "--ncs", "--ts-config", seen(cfg), "--model-store", seen(self.store)]
        if ServerLogging(self.settings.server_logging) == ServerLogging.SERVING:  # per-request lines off (config.py)
            log_config = self.state_dir / "log4j2.xml"
            log_config.write_text(SERVING_LOG4J2, encoding="utf-8")
            args += ["--log-config", seen(log_config)]
        env = {"LOG_LOCATION": seen(ts_logs), "METRICS_LOCATION": seen(ts_logs),
               "TEMP": seen(self.state_dir / "tmp"), "TMPDIR": seen(self.state_dir / "tmp"),
               # the workers run the handler: one intra-op thread pool of the configured size
               "OMP_NUM_THREADS": str(self.settings.threads), "MKL_NUM_THREADS": str(self.settings.threads)}
        return LaunchSpec(name="torchserve", argv=[self.binary, *args], image=self.image,
                          command=["torchserve", *args], ports=self.ports, mounts=mounts,
                          writable={str(self.state_dir), str(ts_logs)}, env=env, cwd=self.state_dir,
                          container_cwd=paths["state"], cpus=self.cpus)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.state_dir is not None:
                shutil.rmtree(self.state_dir, ignore_errors=True)
                ownership.untrack_folder(self.state_dir)

    # --- addresses and the token ---
    def url(self, role: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[role]}{path}"

    @property
    def key_file(self) -> Path:
        if self.state_dir is None:
            raise RuntimeError("TorchServe has no key file: it was not started (prepare() makes its state folder)")
        return self.state_dir / "key_file.json"

    def token(self, kind: str) -> str:
        """The current `inference` or `management` key (read from TorchServe's key file; never logged)."""
        try:
            data = json.loads(self.key_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RuntimeError(f"TorchServe has not written its key file {self.key_file} yet") from None
        return str(data[kind]["key"])

    def auth(self, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(kind)}"}

    # --- health ---
    def healthy(self) -> bool:
        try:
            ping = requests.get(self.url("inference", "/ping"), headers=self.auth("inference"), timeout=2)
            if ping.status_code != 200:
                return False
            return all(self.worker_status(name) == "READY" for name in self.models)
        except (requests.RequestException, RuntimeError, ValueError, KeyError):
            return False

    def describe(self, name: str) -> list[dict]:
        resp = requests.get(self.url("management", f"/models/{name}"), headers=self.auth("management"), timeout=5)
        resp.raise_for_status()
        return resp.json()

    def worker_status(self, name: str) -> str:
        workers = self.describe(name)[0].get("workers", [])
        return "READY" if workers and all(w.get("status") == "READY" for w in workers) else "NOT_READY"

    def worker_pids(self, name: str) -> list[int]:
        return [int(w["pid"]) for w in self.describe(name)[0].get("workers", []) if w.get("pid", -1) > 0]

    def worker_memory(self) -> dict[str, WorkerMemory]:
        """Each model's worker process, found among the server's processes by the socket its id names
        (`--sock-name .../.ts.sock.<id>`: the management API's pid is the container's own under Docker)."""
        import psutil

        by_id: dict[str, int] = {}
        for pid in self.pids():
            try:
                cmd = psutil.Process(pid).cmdline()
            except psutil.Error:
                continue
            sock = next((a for a in cmd if ".ts.sock." in a), None)
            if sock is not None:
                by_id[sock.rpartition(".ts.sock.")[2]] = pid
        out = {}
        for name in self.models:
            for worker in self.describe(name)[0].get("workers", []):
                pid = by_id.get(str(worker.get("id", "")))
                if pid is not None:
                    mem = proc.tree_memory([pid])
                    out[name] = WorkerMemory(pid=pid, rss_bytes=mem["rss_bytes"],
                                             peak_rss_bytes=mem["peak_rss_bytes"])
        return out

    def model_load_seconds(self) -> dict[str, float]:
        """Model load time per served model from TorchServe's own `WorkerLoadTime` gauge (ms)."""
        out: dict[str, float] = {}
        for s in scrape(self.url("metrics", "/metrics")):
            if s.name == "WorkerLoadTime":
                worker = s.labels.get("WorkerName", "")
                for name in self.models:
                    if f"-{name}_" in worker:
                        out[name] = max(out.get(name, 0.0), s.value / 1000.0)
        return out

    # --- what clients use ---
    def endpoints(self) -> list[Endpoint]:
        headers = self.auth("inference")
        settings = self.record()
        out = []
        for name, m in self.models.items():
            common = dict(server="torchserve", model=m.twin, served_name=name, layout=m.layout, headers=headers,
                          server_pids=self.pids(), server_cpus=sorted(self.cpus or ()),
                          settings={**settings, "format": m.format, "exporter": m.exporter,
                                    "mar_sha256": self.mars.get(name, "")},
                          metrics_url=self.url("metrics", "/metrics"), variant=m.variant)
            out.append(Endpoint(stack=m.stack(self.name), protocol="rest",
                                target=self.url("inference", f"/predictions/{name}"), **common))
            out.append(Endpoint(stack=m.stack(self.name), protocol="grpc",
                                target=f"127.0.0.1:{self.ports['grpc_inference']}", **common))
        return out

    def record(self) -> dict[str, object]:
        cfg = self.config.record() if self.config else {}
        return {"server": self.name, "version": VERSION, "launcher": self.launcher.name,
                "ports": dict(self.ports), "cpus": sorted(self.cpus or ()), "threads": self.settings.threads,
                "metrics_url": self.url("metrics", "/metrics"), "key_file": str(self.key_file),
                "logging": self.settings.server_logging, **cfg}
