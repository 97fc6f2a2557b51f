"""TF Serving (`tensorflow_model_server`) behind the `Server` lifecycle: SavedModels laid out as
`<store>/<name>/<version>/`, configs rendered from protos, REST + gRPC, Prometheus metrics on the
REST port. Never replaced by another runtime: when neither the binary nor the image exists, the
stack is reported as not run (see `deploy_compare.serving.stacks.plan_server`).

The native binary binds 0.0.0.0 (no flag to bind 127.0.0.1 only: tensorflow/serving#1969), so the
native launcher refuses it unless public listeners are allowed; under Docker the ports are published
on 127.0.0.1 only.
"""
from __future__ import annotations

import shutil

import requests

from deploy_compare.serving.base import SERVERS, LaunchSpec, Server
from deploy_compare.serving.catalog import CONTAINER_PATHS
from deploy_compare.serving.endpoint import Endpoint, TensorSignature
from deploy_compare.serving.metrics import scrape
from deploy_compare.serving.tfserving import config as tfconfig

VERSION = "2.21.0"  # matches tensorflow-serving-api in requirements.lock (a unit test checks it)
APT_INSTALL = (
    'echo "deb [arch=amd64] http://storage.googleapis.com/tensorflow-serving-apt stable tensorflow-model-server '
    'tensorflow-model-server-universal" | sudo tee /etc/apt/sources.list.d/tensorflow-serving.list && '
    "curl https://storage.googleapis.com/tensorflow-serving-apt/tensorflow-serving.release.pub.gpg "
    "| sudo apt-key add - && sudo apt-get update && sudo apt-get install tensorflow-model-server")


@SERVERS.add
class TFServing(Server):
    name = "tfserving"
    binary = "tensorflow_model_server"
    install_native = APT_INSTALL
    image = f"tensorflow/serving:{VERSION}"
    # the Docker path is the same launcher code that serves TorchServe in tests/test_serving_docker.py
    image_enable = (f"docker pull {image} && deploy-compare run --launcher docker (the same Docker launcher "
                    "that serves TorchServe in the container tests; ports published on 127.0.0.1 only)")
    native_loopback = False
    fatal_log = (r"(?m)^.*(?:Failed to start (?:HTTP|gRPC) [Ss]erver|Couldn't bind|Address already in use|"
                 r"Not found: Could not find base path|Invalid argument:|Failed precondition:).*$",)

    def prepare(self) -> LaunchSpec:
        paths = CONTAINER_PATHS["tfserving"]
        state = self.store / "config"
        state.mkdir(parents=True, exist_ok=True)
        mounts = {str(self.store): paths["models"]}
        seen = lambda p: self.launcher.path(p, mounts)
        for name, model in self.models.items():
            dest = self.store / name / str(tfconfig.MODEL_VERSION)
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(model.path, dest)  # a copy, not a link: bind mounts do not follow links out
        files = {
            "model_config_file": (state / "models.config",
                                  tfconfig.model_config({n: seen(self.store / n) for n in self.models})),
            "batching_parameters_file": (state / "batching.config", tfconfig.batching_parameters(self.batching())),
            "monitoring_config_file": (state / "monitoring.config", tfconfig.monitoring_config()),
        }
        for path, text in files.values():
            path.write_text(text, encoding="utf-8")
        args = [f"--port={self.ports['grpc']}", f"--rest_api_port={self.ports['rest']}",
                "--enable_batching=true", f"--rest_api_num_threads={max(2, self.settings.threads)}",
                f"--tensorflow_intra_op_parallelism={self.settings.threads}",
                "--tensorflow_inter_op_parallelism=1", "--file_system_poll_wait_seconds=0",
                "--grpc_channel_arguments=grpc.so_reuseport=0",
                *[f"--{flag}={seen(path)}" for flag, (path, _) in files.items()]]
        return LaunchSpec(name="tfserving", argv=[self.binary, *args], image=self.image, command=args,
                          ports=self.ports, mounts=mounts, cpus=self.cpus)

    def batching(self) -> tfconfig.BatchingSettings:
        return tfconfig.BatchingSettings(max_batch_size=self.settings.batch_size,
                                         batch_timeout_micros=self.settings.max_batch_delay_ms * 1000,
                                         num_batch_threads=self.settings.threads)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['rest']}{path}"

    def healthy(self) -> bool:
        try:
            for name in self.models:
                resp = requests.get(self.url(f"/v1/models/{name}"), timeout=2)
                states = [v.get("state") for v in resp.json().get("model_version_status", [])]
                if resp.status_code != 200 or "AVAILABLE" not in states:
                    return False
            return True
        except (requests.RequestException, ValueError):
            return False

    def model_load_seconds(self) -> dict[str, float]:
        """SavedModel load time per model from TF Serving's `:tensorflow:cc:saved_model:load_latency` (us)."""
        out: dict[str, float] = {}
        for s in scrape(self.url(tfconfig.PROMETHEUS_PATH)):
            if s.name.startswith(":tensorflow:cc:saved_model:load_latency"):
                for name in self.models:
                    if f"/{name}/" in s.labels.get("model_path", "") + "/":
                        out[name] = s.value / 1e6
        return out

    def endpoints(self) -> list[Endpoint]:
        out = []
        for name, m in self.models.items():
            common = dict(server="tfserving", model=m.twin, served_name=name, layout=m.layout,
                          server_pids=self.pids(), server_cpus=sorted(self.cpus or ()),
                          settings={**self.record(), "format": m.format},
                          metrics_url=self.url(tfconfig.PROMETHEUS_PATH),
                          signature=TensorSignature(input_name=m.input_name, output_name=m.output_name),
                          variant=m.variant)
            out.append(Endpoint(stack=m.stack("tfserving"), protocol="rest",
                                target=self.url(f"/v1/models/{name}:predict"), **common))
            out.append(Endpoint(stack=m.stack("tfserving"), protocol="grpc",
                                target=f"127.0.0.1:{self.ports['grpc']}", **common))
        return out

    def record(self) -> dict[str, object]:
        b = self.batching()
        return {"server": self.name, "version": VERSION, "launcher": self.launcher.name, "ports": dict(self.ports),
                "cpus": sorted(self.cpus or ()), "threads": self.settings.threads,
                "batching": {"max_batch_size": b.max_batch_size, "batch_timeout_micros": b.batch_timeout_micros,
                             "num_batch_threads": b.num_batch_threads, "max_enqueued_batches": b.max_enqueued_batches},
                "metrics_url": self.url(tfconfig.PROMETHEUS_PATH)}
