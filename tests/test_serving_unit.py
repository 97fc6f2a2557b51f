"""Serving without a server: config rendering (TorchServe properties, TF Serving protos), request and
response building against the official protos and the documented REST format, launcher choice and
Docker container arguments, artifact and port checks, metrics parsing, compose consistency."""
from __future__ import annotations

import json
import re
import socket
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from deploy_compare.core import results
from deploy_compare.core.config import ServeSettings
from deploy_compare.serving.base import LaunchSpec, NotAvailable, choose_launcher
from deploy_compare.serving.catalog import (
    CONTAINER_PATHS,
    DEFAULT_PORTS,
    ArtifactMismatch,
    PortInUse,
    allocate_ports,
    check_port_free,
    served_models,
    verified_model,
)
from deploy_compare.serving.clients.base import PredictError
from deploy_compare.serving.clients.rest import parse_response, request_body
from deploy_compare.serving.endpoint import Endpoint
from deploy_compare.serving.launchers.docker import DockerLauncher, container_kwargs
from deploy_compare.serving.launchers.native import NativeLauncher
from deploy_compare.serving.metrics import model_totals, parse_prometheus
from deploy_compare.serving.protoc import cache_root
from deploy_compare.serving.stacks import import_servers
from deploy_compare.serving.tfserving import config as tfconfig
from deploy_compare.serving.tfserving.protos import messages
from deploy_compare.serving.tfserving.server import TFServing
from deploy_compare.serving.torchserve.config import TorchServeConfig, parse_properties
from deploy_compare.serving.torchserve.server import TorchServe

ROOT = Path(__file__).resolve().parent.parent
EP = Endpoint(stack="tfserving/savedmodel", server="tfserving", protocol="rest", model="mlp",
              served_name="mlp-savedmodel", target="http://127.0.0.1:1/v1/models/mlp-savedmodel:predict", layout="NF")


# --- TorchServe config.properties -------------------------------------------------------------------
def _ts_config(store: str = "/runs/r1/artifacts/torchserve") -> TorchServeConfig:
    return TorchServeConfig(bind_host="127.0.0.1", ports=dict(DEFAULT_PORTS["torchserve"]), model_store=store,
                            models={"mlp-torchscript": "mlp-torchscript.mar", "mlp-onnx": "mlp-onnx.mar"},
                            workers=1, netty_threads=1, batch_size=4, max_batch_delay_ms=7)


def test_torchserve_properties_have_safe_defaults_and_explicit_settings():
    props = parse_properties(_ts_config().render())
    for key in ("inference_address", "management_address", "metrics_address"):
        assert props[key].startswith("http://127.0.0.1:")
    assert props["grpc_inference_address"] == props["grpc_management_address"] == "127.0.0.1"
    assert props["disable_token_authorization"] == "false"
    assert props["enable_model_api"] == "false"
    assert props["install_py_dep_per_model"] == "false" and props["enable_envvars_config"] == "false"
    models = json.loads(props["models"])
    entry = models["mlp-onnx"]["1.0"]
    assert (entry["minWorkers"], entry["maxWorkers"], entry["batchSize"], entry["maxBatchDelay"]) == (1, 1, 4, 7)
    assert props["load_models"] == "mlp-onnx.mar,mlp-torchscript.mar"


def test_torchserve_serving_log_config_keeps_the_access_log_and_drops_per_request_lines():
    import xml.etree.ElementTree as ET
    import zipfile

    import ts as ts_package

    from deploy_compare.serving.torchserve.config import SERVING_LOG4J2

    ours = ET.fromstring(SERVING_LOG4J2)
    jar = Path(ts_package.__file__).parent / "frontend" / "model-server.jar"
    default = ET.fromstring(zipfile.ZipFile(jar).read("log4j2.xml"))
    files = {a.get("name"): a for a in ours.iter("RollingFile")}
    # the same appenders and file names as TorchServe's own config, so its log folder looks the same
    assert set(files) == {a.get("name") for a in default.iter("RollingFile")}
    assert {a.get("fileName") for a in files.values()} == {a.get("fileName") for a in default.iter("RollingFile")}
    assert not any(a.get("filePattern").endswith(".gz") for a in files.values())  # no gzip on the server's core
    levels = {lg.get("name"): lg.get("level") for lg in ours.iter("Logger")}
    assert levels["ACCESS_LOG"] == "info" and levels["org.pytorch.serve"] == "info"
    assert levels["MODEL_LOG"] == levels["org.pytorch.serve.wlm"] == "warn"  # the per-request lines
    assert levels["org.pytorch.serve.wlm.ModelManager"] == "info"  # "Model ... loaded" stays


@pytest.mark.parametrize("logging", ["serving", "default"])
def test_torchserve_gets_the_serving_log_config_unless_asked_for_its_own(tmp_path, monkeypatch, logging):
    import deploy_compare.serving.torchserve.server as module

    monkeypatch.setattr(module, "prepare_store", lambda models, store, threads, published: (store, {}))
    server = TorchServe(NativeLauncher(), replace(ServeSettings(), server_logging=logging), [], tmp_path / "store",
                        tmp_path / "logs" / "torchserve.log", dict(DEFAULT_PORTS["torchserve"]))
    try:
        spec = server.prepare()
        assert ("--log-config" in spec.argv) == (logging == "serving")
        assert server.record()["logging"] == logging
        if logging == "serving":
            assert Path(spec.argv[spec.argv.index("--log-config") + 1]).read_text().startswith("<?xml")
    finally:
        server.stop()


@pytest.mark.parametrize("option, good, commands", [
    ("--server-logging", "default", ("serve", "run")),
    ("--cpu-idle", "poll", ("serve", "run", "loadtest")),
])
def test_measurement_choices_are_options_of_their_commands(option, good, commands):
    import argparse

    from deploy_compare.app.commands import run as run_command
    from deploy_compare.loadtests import cli as load_cli
    from deploy_compare.serving import cli

    parsers = {"serve": (cli.configure, ["results/r1"]), "run": (run_command.configure, []),
               "loadtest": (load_cli.configure, ["--null", "--payload", "x"])}
    dest = option.lstrip("-").replace("-", "_")
    # None: the profile's setting (the load stages: idle CPUs poll); `serve` is open-ended: its idle CPUs
    # spin only when asked (--cpu-idle poll)
    defaults = {("--cpu-idle", "serve"): "default"}
    for name in commands:
        configure, positional = parsers[name]
        parser = argparse.ArgumentParser()
        configure(parser)
        assert getattr(parser.parse_args(positional), dest) == defaults.get((option, name))
        assert getattr(parser.parse_args([*positional, option, good]), dest) == good
        with pytest.raises(SystemExit):
            parser.parse_args([*positional, option, "verbose"])


def test_torchserve_allowed_urls_admit_only_this_run_store():
    store = "/runs/r-1.x/artifacts/torchserve"
    regex = parse_properties(_ts_config(store).render())["allowed_urls"]
    assert re.fullmatch(regex, f"file://{store}/mlp-onnx.mar")
    for url in (f"file://{store}/../other/evil.mar", "file:///runs/r-1Xx/artifacts/torchserve/a.mar",
                "https://example.com/a.mar", f"file://{store}/a.mar.py"):
        assert not re.fullmatch(regex, url), url


# --- TF Serving configs from protos ----------------------------------------------------------------
def test_tfserving_model_config_parses_back_with_the_official_proto():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = tfconfig.model_config({"mlp-savedmodel": "/models/mlp-savedmodel",
                                  "cnn-savedmodel": "/models/cnn-savedmodel"})
    cfg = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    names = [(c.name, c.base_path, c.model_platform, list(c.model_version_policy.specific.versions))
             for c in cfg.model_config_list.config]
    assert names == [("cnn-savedmodel", "/models/cnn-savedmodel", "tensorflow", [1]),
                     ("mlp-savedmodel", "/models/mlp-savedmodel", "tensorflow", [1])]


def test_tfserving_batching_and_monitoring_render_upstream_field_names():
    from google.protobuf import text_format

    batching = tfconfig.batching_parameters(tfconfig.BatchingSettings(8, 5000, 1, 100))
    assert "max_batch_size {\n  value: 8\n}" in batching and "batch_timeout_micros {\n  value: 5000\n}" in batching
    monitoring = tfconfig.monitoring_config()
    assert monitoring == 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'
    # field numbers as upstream (session_bundle_config.proto / monitoring_config.proto)
    m = messages()
    numbers = {f.name: f.number for f in m.BatchingParameters.DESCRIPTOR.fields}
    assert numbers == {"max_batch_size": 1, "batch_timeout_micros": 2, "max_enqueued_batches": 3,
                       "num_batch_threads": 4, "thread_pool_name": 5, "allowed_batch_sizes": 6,
                       "pad_variable_length_inputs": 7, "enable_large_batch_splitting": 8,
                       "max_execution_batch_size": 9}
    # the same bytes as the hand-built descriptors these vendored protos replaced
    b = m.BatchingParameters(allowed_batch_sizes=[1, 8], pad_variable_length_inputs=True)
    for name, value in (("max_batch_size", 8), ("batch_timeout_micros", 5000), ("num_batch_threads", 1),
                        ("max_enqueued_batches", 100), ("thread_pool_name", "p")):
        getattr(b, name).value = value
    assert b.SerializeToString().hex() == "0a02080812030888271a020864220208012a030a0170320201083801"
    assert text_format.Parse(monitoring, m.MonitoringConfig()).SerializeToString().hex() == (
        "0a220801121e2f6d6f6e69746f72696e672f70726f6d6574686575732f6d657472696373")
    assert m.MonitoringConfig.DESCRIPTOR.full_name == "tensorflow.serving.MonitoringConfig"
    with pytest.raises(text_format.ParseError):  # a misspelt field is caught here, not by the server
        text_format.Parse("max_batch_sise { value: 1 }", m.BatchingParameters())


def test_tfserving_image_tag_matches_the_installed_api():
    assert TFServing.image == f"tensorflow/serving:{version('tensorflow-serving-api')}"
    from deploy_compare.serving.images import OFFICIAL_TORCHSERVE, TORCHSERVE_IMAGE

    assert OFFICIAL_TORCHSERVE == f"pytorch/torchserve:{version('torchserve')}-cpu"
    assert TorchServe.image == TORCHSERVE_IMAGE  # built by `make images`, or the official image tagged so


# --- requests and answers -------------------------------------------------------------------------
def test_rest_body_is_the_documented_row_format():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    assert json.loads(request_body(x)) == {"instances": [[0.0, 0.25, 0.5], [0.75, 1.0, 1.25]]}
    logits = parse_response(EP, 200, b'{"predictions": [[1.5, -2.0], [0.0, 3.25]]}')
    assert logits.dtype == np.float32 and logits.tolist() == [[1.5, -2.0], [0.0, 3.25]]
    with pytest.raises(PredictError, match="400.*shape"):
        parse_response(EP, 400, b'{"error": "wrong shape"}')
    with pytest.raises(PredictError, match="not JSON"):
        parse_response(EP, 502, b"<html>bad gateway</html>")


def test_tfserving_grpc_request_and_response_use_the_official_protos():
    from tensorflow_serving.apis import predict_pb2

    from deploy_compare.serving.clients.tfserving_grpc import predict_request, predict_response_array, tensor_proto

    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    req = predict_request("cnn-savedmodel", "input_1", x)
    assert req.model_spec.name == "cnn-savedmodel" and req.model_spec.signature_name == "serving_default"
    proto = req.inputs["input_1"]
    assert [d.size for d in proto.tensor_shape.dim] == [3, 8, 8, 1] and proto.dtype == 1  # DT_FLOAT
    wire = predict_pb2.PredictRequest.FromString(req.SerializeToString())
    np.testing.assert_array_equal(np.frombuffer(wire.inputs["input_1"].tensor_content, "<f4").reshape(x.shape), x)
    resp = predict_pb2.PredictResponse()
    logits = np.array([[0.5, -1.0], [2.0, 3.0]], dtype=np.float32)
    resp.outputs["output_0"].CopyFrom(tensor_proto(logits))
    np.testing.assert_array_equal(predict_response_array(resp, "output_0"), logits)
    listed = predict_pb2.PredictResponse()  # servers may answer with float_val instead of packed content
    listed.outputs["output_0"].dtype = 1
    listed.outputs["output_0"].tensor_shape.dim.add(size=2)
    listed.outputs["output_0"].float_val.extend([1.0, 2.0])
    assert predict_response_array(listed, "output_0").tolist() == [1.0, 2.0]
    with pytest.raises(KeyError, match="output_0"):
        predict_response_array(predict_pb2.PredictResponse(), "output_0")


def test_torchserve_grpc_stubs_generate_from_the_installed_jar():
    from deploy_compare.serving import grpc_stubs

    pb, pb_grpc = grpc_stubs.load()
    req = pb.PredictionsRequest(model_name="mlp-onnx", input={"data": request_body(np.zeros((1, 2), np.float32))})
    assert json.loads(req.input["data"]) == {"instances": [[0.0, 0.0]]}
    assert hasattr(pb_grpc, "InferenceAPIsServiceStub")
    stubs = Path(pb.__file__).parent
    assert stubs.is_relative_to(cache_root()) and not stubs.is_relative_to(ROOT)  # never into the package


def test_protos_compile_into_the_cache_folder_given(tmp_path, monkeypatch):
    from deploy_compare.serving import grpc_stubs
    from deploy_compare.serving.tfserving import protos

    monkeypatch.setenv("DEPLOY_COMPARE_CACHE", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"
    stubs = grpc_stubs.generate()
    assert stubs.parent == tmp_path / "cache" / "protos" and (stubs / "inference_pb2_grpc.py").is_file()
    protos.messages.cache_clear()
    try:
        assert protos.messages().BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
        assert [p.name for p in (tmp_path / "cache" / "protos").iterdir()] != []
    finally:
        protos.messages.cache_clear()
    assert grpc_stubs.generate() == stubs  # compiled once


# --- launchers --------------------------------------------------------------------------------------
def test_auto_reports_tfserving_not_run_with_reason_and_commands(monkeypatch):
    import_servers()
    monkeypatch.setattr("deploy_compare.serving.launchers.native.resolve_binary", lambda name: None)
    monkeypatch.setattr("deploy_compare.serving.launchers.docker._client",
                        lambda: (_ for _ in ()).throw(OSError("no engine")))
    with pytest.raises(NotAvailable) as info:
        choose_launcher("auto", TFServing, ServeSettings())
    assert "tensorflow_model_server" in info.value.reason and "no Docker engine" in info.value.reason
    assert "apt-get install tensorflow-model-server" in info.value.enable_command
    assert "docker pull tensorflow/serving:" in info.value.enable_command


def test_ray_serve_runs_unnamed_only_where_containers_are_asked_for():
    """The default quick run (`auto`) keeps its served set; `--launcher docker` / `both` add Ray Serve."""
    from deploy_compare.core.config import QUICK
    from deploy_compare.serving.base import chosen_servers

    import_servers()
    assert "rayserve" not in chosen_servers(QUICK.serve) and QUICK.serve.launcher == "auto"
    assert "rayserve" not in chosen_servers(replace(ServeSettings(), launcher="native"))
    for launcher in ("docker", "both"):
        assert sorted(chosen_servers(replace(ServeSettings(), launcher=launcher))) == [
            "rayserve", "tfserving", "torchserve"]
    assert chosen_servers(replace(ServeSettings(), servers=("rayserve",))) == ["rayserve"]


def test_without_docker_ray_serve_is_not_run_with_both_reasons(monkeypatch, tmp_path):
    """No engine (DOCKER_HOST names a socket nothing listens on): `auto` cannot fall back to native Ray Serve
    (its gRPC servers bind [::]: tests/test_serving_rayserve.py), so the plan is a NotRun naming both launchers'
    reasons and both ways to enable it."""
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.serving.rayserve.server import RayServe
    from deploy_compare.serving.stacks import plan_server

    import_servers()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    planned = plan_server("rayserve", RunDir(tmp_path / "run"), ServeSettings())
    assert planned.server is None
    reason, enable = planned.not_run.reason, planned.not_run.enable_command
    assert "native: " in reason and "docker: no Docker engine reachable" in reason, reason
    assert RayServe.image_enable in enable, enable


def test_native_tfserving_is_refused_because_it_binds_all_interfaces(monkeypatch):
    monkeypatch.setattr("deploy_compare.serving.launchers.native.resolve_binary", lambda name: "/usr/bin/" + name)
    with pytest.raises(NotAvailable, match="0.0.0.0"):
        NativeLauncher().check(TFServing, ServeSettings())
    NativeLauncher().check(TFServing, replace(ServeSettings(), allow_public_bind=True))  # explicit opt-in
    NativeLauncher().check(TorchServe, ServeSettings())


def test_docker_container_publishes_on_loopback_with_readonly_mounts(tmp_path):
    store, state = tmp_path / "store", tmp_path / "state"
    spec = LaunchSpec(name="tfserving", argv=[], image=TFServing.image, command=["--port=8500"],
                      ports={"grpc": 8500, "rest": 8501}, mounts={str(store): "/models", str(state): "/s"},
                      writable={str(state)}, cpus={0})
    kw = container_kwargs(spec)
    assert kw["ports"] == {"8500/tcp": ("127.0.0.1", 8500), "8501/tcp": ("127.0.0.1", 8501)}
    assert kw["volumes"][str(store)] == {"bind": "/models", "mode": "ro"}
    assert kw["volumes"][str(state)]["mode"] == "rw"
    assert kw["cpuset_cpus"] == "0" and kw["image"] == "tensorflow/serving:" + TFServing.image.split(":")[1]
    assert "shm_size" not in kw and container_kwargs(replace(spec, shm_size=1 << 27))["shm_size"] == 1 << 27
    launcher = DockerLauncher()
    assert launcher.path(store / "mlp" / "1", spec.mounts) == "/models/mlp/1"
    with pytest.raises(ValueError, match="not under any mount"):
        launcher.path(tmp_path / "elsewhere", spec.mounts)


# --- artifacts and ports ---------------------------------------------------------------------------
def _manifest(tmp_path: Path):
    from deploy_compare.models.exporters.base import ArtifactRecord, Manifest, TensorSpec, digest

    art = tmp_path / "artifacts" / "mlp" / "torchscript" / "model.pt"
    art.parent.mkdir(parents=True)
    art.write_bytes(b"weights v1")
    sha, size = digest(art)
    rec = ArtifactRecord(twin="mlp", format="torchscript", variant="fp32", source_framework="pytorch",
                         exporter="torchscript", path=art.relative_to(tmp_path).as_posix(), sha256=sha, bytes=size,
                         inputs=[TensorSpec("x", [None, 64], "float32")], outputs=[TensorSpec("logits", [None, 10],
                                                                                                "float32")],
                         layout="NF", dynamic_batch=True, export_seconds=0.1)
    return Manifest(run_id="t", artifacts=[rec]), rec, art


def test_artifact_whose_sha256_changed_is_refused_naming_it(tmp_path):
    manifest, rec, art = _manifest(tmp_path)
    [model] = served_models(tmp_path, manifest, "torchserve")
    assert model.served_name == "mlp-torchscript" and model.input_shape == (64,)
    art.write_bytes(b"weights v2 (tampered)")
    with pytest.raises(ArtifactMismatch, match=r"mlp/torchscript/fp32.*does not match the manifest"):
        verified_model(tmp_path, rec)
    with pytest.raises(ValueError, match="inside"):  # the manifest record itself refuses a path leaving the run
        replace(rec, path="../elsewhere/model.pt")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "model.pt").write_bytes(art.read_bytes())
    (tmp_path / "link").symlink_to(outside)  # inside by name, outside once resolved
    with pytest.raises(ArtifactMismatch, match="outside the run folder"):
        verified_model(tmp_path, replace(rec, path="link/model.pt"))


def test_port_already_taken_is_a_clear_error_before_starting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} .*already taken"):
            check_port_free(port, "torchserve inference")
    ports = allocate_ports("torchserve", fixed=False)
    assert set(ports) == set(DEFAULT_PORTS["torchserve"]) and len(set(ports.values())) == len(ports)


# --- metrics -----------------------------------------------------------------------------------------
def test_prometheus_parsing_and_model_totals():
    text = """# HELP ts_inference_requests_total Total number of inference requests.
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="mlp-onnx",model_version="default",hostname="h",} 12.0
ts_inference_requests_total{model_name="cnn-onnx",model_version="default",hostname="h",} 3.0
# HELP ts_inference_latency_microseconds Cumulative inference duration in microseconds
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{model_name="mlp-onnx",model_version="default",hostname="h",} 2400.5
WorkerLoadTime{WorkerName="W-9000-mlp-onnx_1.0",Level="Host",Hostname="h",} 1234.0
"""
    samples = parse_prometheus(text)
    assert len(samples) == 4 and samples[-1].labels["WorkerName"] == "W-9000-mlp-onnx_1.0"
    histogram = parse_prometheus('# TYPE :tensorflow:serving:request_latency histogram\n'
                                 ':tensorflow:serving:request_latency_bucket{model_name="m",le="+Inf"} 3\n'
                                 ':tensorflow:serving:request_latency_sum{model_name="m"} 1.5e3\n'
                                 ':tensorflow:serving:request_latency_count{model_name="m"} 3\n')
    assert [(s.name, s.value) for s in histogram][1:] == [(":tensorflow:serving:request_latency_sum", 1500.0),
                                                          (":tensorflow:serving:request_latency_count", 3.0)]
    with pytest.raises(ValueError, match="http://x/metrics is not Prometheus text"):
        parse_prometheus("<html>not metrics</html>\n", source="http://x/metrics")
    totals = model_totals(samples, "mlp-onnx", ("ts_inference_requests_total", "ts_inference_latency_microseconds"))
    assert totals == {"ts_inference_requests_total": 12.0, "ts_inference_latency_microseconds": 2400.5}


def test_serving_results_round_trip(tmp_path):
    from deploy_compare.models.parity import ParityTolerance
    from deploy_compare.serving.results import ColdStart, ServerRun, ServingResults

    out = ServingResults(run_id="r", launcher_requested="auto", tolerance=ParityTolerance(),
                         probe={"min_samples": 50.0})
    out.servers.append(ServerRun(server="torchserve", launcher="native", settings={"ports": {"inference": 1}},
                                 log="logs/torchserve.log",
                                 cold_start=ColdStart("torchserve", "native", 12.5, {"mlp-onnx": 3.0})))
    path = results.save(out, tmp_path / "serving.json")
    assert results.load(ServingResults, path) == out


# --- the compose `prepare` step (the file itself: tests/test_serving_compose.py) -----------------------
def test_compose_render_writes_configs_with_container_paths_and_default_ports(tmp_path):
    """`python -m deploy_compare.serving.compose` (the compose `prepare` service) renders through the server code."""
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.serving import compose

    manifest, rec, art = _manifest(tmp_path)
    run_dir = RunDir(tmp_path)
    results.save(manifest, run_dir.manifest)
    pytest.importorskip("torch")
    import torch

    module = torch.jit.script(torch.nn.Linear(64, 10))
    torch.jit.save(module, str(art))
    from deploy_compare.models.exporters.base import digest

    rec.sha256, rec.bytes = digest(art)
    results.save(manifest, run_dir.manifest)
    written = compose.render(run_dir)
    props = parse_properties(written["torchserve"].read_text())
    assert props["inference_address"] == f"http://0.0.0.0:{DEFAULT_PORTS['torchserve']['inference']}"
    assert props["model_store"] == CONTAINER_PATHS["torchserve"]["model_store"]
    assert (run_dir.artifacts / "torchserve" / "mlp-torchscript.mar").is_file()
    assert not list(tmp_path.rglob("key_file.json"))
    from deploy_compare.serving.torchserve.config import SERVING_LOG4J2

    # docker-compose.yml's `--log-config` reads it from the mounted config folder
    assert (written["torchserve"].parent / "log4j2.xml").read_text() == SERVING_LOG4J2


# --- readiness: bounded, log-scanning, notices a dead process ----------------------------------------
class _FakeHandle:
    def __init__(self, log: str = "", alive: bool = True) -> None:
        import time

        self.started_at = time.perf_counter()
        self.log, self._alive = log, alive

    def alive(self) -> bool:
        return self._alive

    def stop(self, timeout: float) -> None:
        self._alive = False

    def pids(self) -> list[int]:
        return []

    def log_text(self) -> str:
        return self.log


def _server(tmp_path, healthy: bool, handle: _FakeHandle) -> TorchServe:
    server = TorchServe(NativeLauncher(), ServeSettings(), [], tmp_path / "store", tmp_path / "ts.log",
                        dict(DEFAULT_PORTS["torchserve"]))
    server.healthy = lambda: healthy  # type: ignore[method-assign]
    server.handle = handle
    return server


def test_wait_ready_fails_fast_on_a_fatal_log_line_or_a_dead_process(tmp_path):
    from deploy_compare.serving.base import ServerError

    log = "2026 [INFO ] main ...\n2026 [ERROR] W-9000 org.pytorch.serve.wlm.WorkerThread - Load model failed: mlp\n"
    cases = [(_server(tmp_path, False, _FakeHandle(log)), 30.0, "Load model failed: mlp"),
             (_server(tmp_path, False, _FakeHandle(alive=False)), 30.0, "process exited"),
             (_server(tmp_path, False, _FakeHandle()), 0.3, "not ready after 0s")]
    ready = _server(tmp_path, True, _FakeHandle())
    try:
        for server, timeout, message in cases:
            with pytest.raises(ServerError, match=message):
                server.wait_ready(timeout, poll=0.05)
        assert ready.wait_ready(5) >= 0 and ready.ready_seconds is not None
    finally:
        for server in [ready, *(c[0] for c in cases)]:
            server.stop()
        # never prepared (the fake handles stand in for started processes): no private state folder made
        assert all(s.state_dir is None for s in [ready, *(c[0] for c in cases)])


def test_around_derives_server_means_and_notes_untimed_protocols(monkeypatch):
    from deploy_compare.serving import metrics

    scrapes = iter([
        'ts_inference_requests_total{model_name="m",} 10.0\nts_inference_latency_microseconds{model_name="m",} 1000.0\n'
        'ts_queue_latency_microseconds{model_name="m",} 100.0\n',
        'ts_inference_requests_total{model_name="m",} 14.0\nts_inference_latency_microseconds{model_name="m",} 1000.0\n'
        'ts_queue_latency_microseconds{model_name="m",} 300.0\n'])
    monkeypatch.setattr(metrics, "scrape", lambda url, timeout=5.0: parse_prometheus(next(scrapes)))
    windows = []
    ep = Endpoint(stack="torchserve/onnx", server="torchserve", protocol="grpc", model="mlp", served_name="m",
                  target="127.0.0.1:1", layout="NF", metrics_url="http://127.0.0.1:1/metrics")
    with metrics.make_around(windows)(ep):
        pass
    [w] = windows
    assert w.delta["ts_inference_requests_total"] == 4 and w.derived == {"mean_queue_ms": 0.05}
    assert "ts_inference_latency_microseconds did not grow" in w.notes[0]


def test_rayserve_config_sets_every_ray_listener_to_its_own_port_on_loopback(tmp_path):
    from deploy_compare.serving.catalog import DEFAULT_PORTS
    from deploy_compare.serving.rayserve.config import ModelSpec, RayServeConfig

    ports = dict(DEFAULT_PORTS["rayserve"])
    cfg = RayServeConfig(node_ip="127.0.0.1", http_host="127.0.0.1", ports=ports, worker_ports=(20000, 20031),
                         temp_dir="/tmp/x", models=[ModelSpec("mlp-onnx-torch", "onnx", "/m.onnx", "NF", [64],
                                                              "float32", "x", "y")])
    argv = cfg.ray_start_argv()
    assert "--node-ip-address=127.0.0.1" in argv and "--dashboard-host=127.0.0.1" in argv
    assert "--include-dashboard=false" in argv and "--min-worker-port=20000" in argv
    used = {int(a.split("=")[1]) for a in argv if a.startswith("--") and "port=" in a and "worker" not in a}
    env = cfg.ray_env()
    used |= {int(env["AUTOSCALER_METRIC_PORT"]), int(env["DASHBOARD_METRIC_PORT"])}
    assert used | {ports["http"], ports["grpc"]} == set(ports.values()), "a port role is not passed to Ray"
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # single-node mode keeps the node on 127.0.0.1
    assert RayServeConfig.read(cfg.write(tmp_path / "rayserve.json")) == cfg


def test_rayserve_window_means_split_proxy_and_replica():
    from deploy_compare.serving.metrics import derive, model_totals, parse_prometheus

    text = "\n".join([
        'ray_serve_http_request_latency_ms_sum{application="a",route="/"} 90',
        'ray_serve_http_request_latency_ms_count{application="a",route="/"} 10',
        'ray_serve_deployment_processing_latency_ms_sum{deployment="mlp-onnx-torch"} 20',
        'ray_serve_deployment_processing_latency_ms_count{deployment="mlp-onnx-torch"} 10',
        'ray_serve_deployment_processing_latency_ms_sum{deployment="tfserving-api"} 70',
        'ray_serve_deployment_processing_latency_ms_count{deployment="tfserving-api"} 10'])
    from deploy_compare.serving.metrics import SERVER_COUNTERS

    totals = model_totals(parse_prometheus(text), "mlp-onnx-torch", SERVER_COUNTERS["rayserve"][0])
    derived, _ = derive("rayserve", totals)
    assert derived == {"mean_proxy_http_ms": 9.0, "mean_replica_ms": 2.0}  # the ingress's own series left out


def test_a_missing_body_is_answered_with_what_was_received_and_what_is_expected():
    from deploy_compare.serving.torchserve.handler import no_body

    form = no_body({}, {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "337",
                        "body": {"content-type": ""}})
    assert form.startswith("no JSON body reached the model: received Content-Type application/x-www-form-urlencoded, "
                           "337 bytes") and "no form fields" in form and "-H 'Content-Type: application/json'" in form
    fields = no_body({"a": bytearray(b"1")}, {"content-type": "application/x-www-form-urlencoded"})
    assert "2 bytes" in fields and "form fields ['a']" in fields  # no Content-Length: the fields' size (a=1)
    assert no_body({"body": bytearray()}, {"Content-Type": "application/json", "Content-Length": "0"}) == (
        'empty request body (received Content-Type application/json, 0 bytes); expected a JSON body '
        '{"instances": [...]}')
    assert "Content-Type (none), 0 bytes" in no_body({}, {})  # gRPC, or a context without headers
