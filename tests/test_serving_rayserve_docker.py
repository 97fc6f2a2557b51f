"""Ray Serve in the toolkit image's container through the Docker launcher (what `auto` picks for Ray Serve
where Docker runs): mlp's five fp32 formats, served parity over REST and gRPC, only Serve's HTTP and gRPC ports
published, on 127.0.0.1 (Ray's own listeners, [::] ones included, stay in the container's network namespace),
and nothing left after stop. Skipped, with the reason, only where no engine or no image exists.

One container for the module, not pinned: on both cores the five replicas were ready in ~50 s (pinned to one
core as the load stage runs it, ~130 s); nothing here is timed."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from deploy_compare.core.config import ServeSettings
from deploy_compare.serving.base import choose_launcher
from deploy_compare.serving.rayserve.server import RayServe
from tests.servers import docker_or_skip, host_listeners, running_server

pytestmark = [pytest.mark.docker, pytest.mark.integration]
FORMATS = ("savedmodel", "tflite", "torchscript", "onnx-torch", "onnx-tf")  # SERVED_FORMATS["rayserve"]
NAMES = {f"mlp-{f}" for f in FORMATS}
PUBLISHED = ("http", "grpc")


@pytest.fixture(scope="module")
def ray_container(request):
    docker_or_skip(RayServe)  # first: skips before the session's spine_run is trained
    spine_run = request.getfixturevalue("spine_run")
    settings = replace(ServeSettings(), launcher="docker", twins=("mlp",), pin_server_cpu=None)
    with running_server("rayserve", spine_run, settings, FORMATS, settings.ready_timeout_s) as server:
        yield server


def test_auto_picks_the_container_for_ray_serve():
    docker_or_skip(RayServe)
    assert choose_launcher("auto", RayServe, ServeSettings()).name == "docker"  # native: refused ([::] listeners)


def test_served_parity_over_rest_and_grpc_in_the_container(ray_container, spine_run):
    from deploy_compare.models.parity import ParityTolerance
    from deploy_compare.serving.session import served_parity

    endpoints = ray_container.endpoints()
    assert {(ep.served_name, ep.protocol) for ep in endpoints} == {(n, p) for n in NAMES for p in ("rest", "grpc")}
    for ep in endpoints:
        parity = served_parity(ep, spine_run, ParityTolerance())
        assert parity.ok, f"{ep.served_name}/{ep.protocol}: {parity.problem()}"
        assert ep.settings["launcher"] == "docker"
    assert set(ray_container.model_load_seconds()) == NAMES
    assert ray_container.ready_seconds and ray_container.ready_seconds > 0
    assert ray_container.handle.memory()["cgroup_working_set_bytes"] > 200e6  # Ray's daemons + six replicas


def test_only_the_serve_ports_are_published_on_loopback(ray_container):
    host = ray_container.handle.container.attrs["HostConfig"]
    assert set(host["PortBindings"]) == {f"{ray_container.ports[r]}/tcp" for r in PUBLISHED}
    assert {b["HostIp"] for v in host["PortBindings"].values() for b in v} == {"127.0.0.1"}
    assert int(host["ShmSize"]) > 100 * 1024 * 1024  # Ray's object store in /dev/shm, not in a file
    for role, port in ray_container.ports.items():  # Ray's GCS, raylet, agents...: nothing on the host
        assert host_listeners(port) == ({"127.0.0.1"} if role in PUBLISHED else set()), (role, port)


def test_stop_leaves_no_container_no_listener_no_state(ray_container):
    import docker.errors

    from deploy_compare.serving.launchers import docker as docker_launcher

    container, state = ray_container.handle.container, ray_container.state_dir
    t0 = time.monotonic()
    ray_container.stop()  # the fixture's stop after this one finds nothing left to do
    took = time.monotonic() - t0
    with pytest.raises(docker.errors.NotFound):
        container.reload()  # removed, not just stopped
    assert not docker_launcher._LIVE, "the launcher still tracks a container after stop"
    assert not state.exists(), f"Ray's state folder {state} left after stop"
    for role in PUBLISHED:
        assert host_listeners(ray_container.ports[role]) == set(), role
    assert ray_container.log_path.with_name("rayserve-ray-logs").is_dir()  # Ray's session logs kept
    assert took < 20, f"stopping the container took {took:.1f} s"
