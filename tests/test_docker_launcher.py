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

IMAGE = "deploy-compare-test/busybox:local"


# --- pure parts (no engine) ---------------------------------------------------------------------------
def test_containers_never_run_as_root_and_get_a_home(monkeypatch, tmp_path):
    from deploy_compare.serving.launchers import docker as launcher

    spec = _spec(8080)
    spec.container_cwd = "/home/model-server/dc"
    monkeypatch.setattr(launcher.os, "getuid", lambda: 0)
    monkeypatch.setattr(launcher.os, "getgid", lambda: 0)
    kw = launcher.container_kwargs(spec)
    assert kw["user"] == "1000:1000" and kw["environment"]["HOME"] == "/home/model-server/dc"
    assert kw["init"] and kw["environment"]["TINI_KILL_PROCESS_GROUP"] == "1"  # SIGTERM reaches the server
    monkeypatch.setattr(launcher.os, "getuid", lambda: 1234)
    monkeypatch.setattr(launcher.os, "getgid", lambda: 1234)
    assert launcher.container_kwargs(spec)["user"] == "1234:1234"


def test_launcher_both_means_native_and_docker_on_free_ports():
    from dataclasses import replace

    from deploy_compare.core.config import ServeSettings
    from deploy_compare.serving.stacks import launcher_choices

    assert launcher_choices(replace(ServeSettings(), launcher="both")) == ["native", "docker"]
    assert launcher_choices(replace(ServeSettings(), launcher="auto")) == ["auto"]
    with pytest.raises(ValueError, match="fixed-ports"):
        launcher_choices(replace(ServeSettings(), launcher="both", fixed_ports=True))


def test_image_tags_follow_their_content(tmp_path):
    from deploy_compare.serving.images import content_hash

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    first = content_hash(("Dockerfile", "src"), "base:1", root=tmp_path)
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert content_hash(("Dockerfile", "src"), "base:1", root=tmp_path) == first  # caches do not count
    assert content_hash(("Dockerfile", "src"), "base:2", root=tmp_path) != first  # a new base is a new image
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert content_hash(("Dockerfile", "src"), "base:1", root=tmp_path) != first


# --- against a real engine -------------------------------------------------------------------------------
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
    from deploy_compare.serving.base import LaunchSpec

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


@pytest.mark.docker
@pytest.mark.integration
def test_container_serves_on_loopback_and_is_removed_on_stop(engine, tmp_path):
    from deploy_compare.serving.launchers.docker import DockerLauncher

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


@pytest.mark.docker
@pytest.mark.integration
def test_leftover_containers_are_removed_on_exit_path(engine, tmp_path):
    from deploy_compare.serving.launchers.docker import DockerLauncher, stop_all_containers

    DockerLauncher().launch(_spec(free_port()), tmp_path / "c.log")
    assert len(_ours(engine)) == 1
    stop_all_containers(timeout=1)  # what the CLI's exit path and atexit call
    assert _ours(engine) == []
