"""The Docker launcher against a real local engine (started by scripts/docker-engine.sh in CI).

No image can be pulled here, so the test builds its own image from Debian's busybox-static (a real
container running a real HTTP server) and drives it through the same `DockerLauncher` the servers use:
published on 127.0.0.1 only, reachable, stopped and removed on every exit path.
"""
from __future__ import annotations

import io
import shutil
import tarfile
import time
import urllib.request

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.docker, pytest.mark.integration]

IMAGE = "deploy-compare-test/busybox:local"


@pytest.fixture(scope="module")
def engine():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine: {exc} (start one with scripts/docker-engine.sh start)")
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static is not installed (scripts/docker-engine.sh start installs it)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        page = b"ok\n"
        info = tarfile.TarInfo("www/ping")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    client.api.import_image_from_data(buf.getvalue(), repository=IMAGE.split(":")[0], tag="local",
                                      changes=['ENTRYPOINT ["/bin/busybox"]'])
    yield client
    client.images.remove(IMAGE, force=True)


def _spec(port: int):
    from serving.base import LaunchSpec

    return LaunchSpec(name="busybox-test", argv=[], image=IMAGE,
                      command=["httpd", "-f", "-p", str(port), "-h", "/www"], ports={"http": port})


def _get(port: int, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                return resp.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _ours(client):
    return client.containers.list(all=True, filters={"label": "deploy-compare=busybox-test"})


def test_container_serves_on_loopback_and_is_removed_on_stop(engine, tmp_path):
    from serving.launchers.docker import DockerLauncher

    port = free_port()
    handle = DockerLauncher().launch(_spec(port), tmp_path / "c.log")
    try:
        assert handle.alive()
        assert _get(port) == b"ok\n"
        bindings = _ours(engine)[0].attrs["HostConfig"]["PortBindings"]
        assert {b["HostIp"] for v in bindings.values() for b in v} == {"127.0.0.1"}
        assert handle.pids(), "the container's host pids are known (CPU accounting, fault tests)"
    finally:
        handle.stop(timeout=1)
    assert not handle.alive()
    assert _ours(engine) == []


def test_leftover_containers_are_removed_on_exit_path(engine, tmp_path):
    from serving.launchers.docker import DockerLauncher, stop_all_containers

    DockerLauncher().launch(_spec(free_port()), tmp_path / "c.log")
    assert len(_ours(engine)) == 1
    stop_all_containers(timeout=1)  # what the CLI's exit path and atexit call
    assert _ours(engine) == []
