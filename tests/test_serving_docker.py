"""TorchServe in a container through the Docker launcher (the image `make images` builds here, offline):
served parity over REST and gRPC, ports published on 127.0.0.1 only, read-only model store, CPU pinning,
the container's cgroup memory, and the container removed on every exit path (stop, SIGINT and SIGTERM
to the CLI mid-serve). Skipped, with the reason, only where no engine or no image exists.

One container is shared by the module (a TorchServe container serving both columns' mlp formats, seven
workers, takes ~30-60 s to become ready)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy_compare.core.config import ServeSettings
from deploy_compare.serving.torchserve.server import TorchServe
from tests.servers import docker_or_skip, host_listeners

pytestmark = [pytest.mark.docker, pytest.mark.integration]
ROOT = Path(__file__).resolve().parent.parent
# every format of both columns (serving/catalog.py SERVED_FORMATS) for the mlp twin, as natively
SERVED = ("torchscript", "onnx-torch", "savedmodel", "tflite", "onnx-tf")
NAMES = {"mlp-torchscript", "mlp-onnx-torch", "mlp-savedmodel", "mlp-tflite", "mlp-tflite-int8-dynamic",
         "mlp-tflite-fp16", "mlp-onnx-tf"}


@pytest.fixture(scope="session")  # session, first argument: it skips before the session's spine_run is trained
def docker_ready():
    docker_or_skip(TorchServe)


@pytest.fixture(scope="module")
def ts_container(docker_ready, request):
    from deploy_compare.serving.launchers import docker as docker_launcher
    from tests.servers import running_torchserve

    spine_run = request.getfixturevalue("spine_run")  # only once we know the test can run
    with running_torchserve(spine_run, formats=SERVED, launcher="docker") as server:
        yield server
        container = server.handle.container
        stopping = time.monotonic()
    took = time.monotonic() - stopping
    # TorchServe sees the SIGTERM (tini as PID 1) and shuts down: not the stop timeout (20 s), then SIGKILL
    assert took < 15, f"stopping the container took {took:.1f} s"
    assert not docker_launcher._LIVE, "the launcher still tracks a container after stop"
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        container.reload()  # removed, not just stopped


def test_served_parity_over_rest_and_grpc_in_the_container(docker_ready, ts_container, spine_run):
    """Both columns in the container, as natively: every fp32 format gated, the TFLite variants reported."""
    from deploy_compare.models.parity import ParityTolerance
    from deploy_compare.serving.session import served_parity

    endpoints = ts_container.endpoints()
    assert {(ep.served_name, ep.protocol) for ep in endpoints} == {
        (name, proto) for name in NAMES for proto in ("rest", "grpc")}
    for ep in endpoints:
        parity = served_parity(ep, spine_run, ParityTolerance())
        assert parity.ok, f"{ep.served_name}/{ep.protocol}: {parity.problem()}"
        assert parity.figures.gated == (ep.variant == "fp32")
    assert set(ts_container.worker_memory()) == NAMES  # the container's workers, found by their sockets


def test_container_is_loopback_only_pinned_readonly_and_unprivileged(ts_container):
    attrs = ts_container.handle.container.attrs
    host = attrs["HostConfig"]
    assert {b["HostIp"] for v in host["PortBindings"].values() for b in v} == {"127.0.0.1"}
    for port in ts_container.ports.values():
        assert host_listeners(port) == {"127.0.0.1"}, f"port {port}: {host_listeners(port)}"
    if ts_container.cpus:
        assert host["CpusetCpus"] == ",".join(str(c) for c in sorted(ts_container.cpus))
    mounts = {m["Destination"]: m["RW"] for m in attrs["Mounts"]}
    assert mounts["/home/model-server/model-store"] is False
    assert attrs["Config"]["User"] not in ("", "0", "0:0", "root")
    assert ts_container.key_file.exists(), "the host client reads TorchServe's key file from the private mount"


def test_cold_start_and_cgroup_memory_are_measured(ts_container):
    assert ts_container.ready_seconds and ts_container.ready_seconds > 0
    assert set(ts_container.model_load_seconds()) == NAMES
    mem = ts_container.handle.memory()
    assert mem["cgroup_working_set_bytes"] > 50e6, mem  # a JVM + two Python workers
    assert mem["cgroup_usage_bytes"] >= mem["cgroup_working_set_bytes"]


def _containers(client) -> set[str]:
    return {c.id for c in client.containers.list(all=True, filters={"label": "deploy-compare=torchserve"})}


def _default_signals() -> None:
    # a child started from a non-interactive shell may inherit SIGINT ignored; the CLI must see real signals
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _serve(spine_run, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "deploy_compare.app.cli", "serve", str(spine_run.path),
                                 "--launcher", "docker", "--servers", "torchserve", "--twins", "mlp",
                                 "--check-every", "0.5"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_default_signals)


def test_sigint_and_sigterm_to_the_cli_mid_serve_remove_the_containers(docker_ready, spine_run, tmp_path):
    """Two CLIs serving at once (one container start of wall time): one gets SIGINT, the other SIGTERM."""
    import docker

    client = docker.from_env(timeout=30)
    before = _containers(client)
    signals = {signal.SIGINT: tmp_path / "sigint.log", signal.SIGTERM: tmp_path / "sigterm.log"}
    clis = {sig: _serve(spine_run, log) for sig, log in signals.items()}
    try:
        deadline = time.monotonic() + 240
        for sig, cli in clis.items():
            log = signals[sig]
            while "serving until Ctrl-C" not in log.read_text(errors="replace"):
                assert cli.poll() is None, f"the CLI exited early:\n{log.read_text(errors='replace')[-3000:]}"
                assert time.monotonic() < deadline, f"not serving after 240 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
        assert len(_containers(client) - before) == 2, "each CLI serves TorchServe from one container"
        for sig, cli in clis.items():
            cli.send_signal(sig)
        for cli in clis.values():
            cli.wait(timeout=90)
    finally:
        for cli in clis.values():
            if cli.poll() is None:
                cli.kill()
                cli.wait(timeout=30)
    assert _containers(client) - before == set(), "containers left after SIGINT/SIGTERM to the CLI"
    for sig, log in signals.items():
        assert "servers stopped" in log.read_text(errors="replace"), f"{sig.name}: {log.read_text()[-2000:]}"


def test_launcher_both_plans_each_server_natively_and_in_a_container(docker_ready, spine_run):
    from dataclasses import replace

    from deploy_compare.serving.stacks import import_servers, plan_servers

    import_servers()
    settings = replace(ServeSettings(), launcher="both", twins=("mlp",))
    plans = plan_servers("torchserve", spine_run, settings, ["torchscript"])
    servers = [p.server for p in plans]
    assert [s.launcher.name for s in servers] == ["native", "docker"]
    assert [s.log_path.name for s in servers] == ["torchserve.log", "torchserve-docker.log"]
    assert not set(servers[0].ports.values()) & set(servers[1].ports.values())
    for s in servers:
        s.stop()  # nothing started: removes the private state folders
    not_run = plan_servers("tfserving", spine_run, settings)  # no binary, no image here: one reason per launcher
    if all(p.server is None for p in not_run):
        assert [p.not_run.what for p in not_run] == ["tfserving (native)", "tfserving (docker)"]
        assert "same Docker launcher" in not_run[1].not_run.enable_command
    for p in not_run:
        if p.server is not None:
            p.server.stop()
