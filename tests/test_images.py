"""The images `make images` builds (serving/images.py): which TorchServe image is used (the official one only when it
holds every module the served formats need), the intermediate stage images a build leaves are removed (its own
only), and the toolkit runs as uid 1000 on a read-only file system. The docker tests use the local images and
never build the big ones; DC_TOOLKIT_IMAGE / DC_TORCHSERVE_IMAGE name other tags (as docker-compose.yml does).
That the TorchServe image, however chosen, serves an ONNX model is tests/test_serving_docker.py's served parity
of every served format (ONNX, SavedModel, TFLite among them) over REST and gRPC in that image."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from deploy_compare.serving import images
from deploy_compare.serving.images import TOOLKIT_IMAGE, TORCHSERVE_IMAGE

TOOLKIT = os.environ.get("DC_TOOLKIT_IMAGE", TOOLKIT_IMAGE)
TORCHSERVE = os.environ.get("DC_TORCHSERVE_IMAGE", TORCHSERVE_IMAGE)
BASE = "deploy-compare/base:local"


def docker_image(tag: str) -> str:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True,
                                                         timeout=60).returncode != 0:
        pytest.skip("no Docker engine answers `docker info` (scripts/docker-engine.sh start)")
    if not images.image_exists(tag):
        pytest.skip(f"image {tag} is not here: run `make images`")
    return tag


def test_served_modules_come_from_the_runtime_registry():
    assert images.served_modules("torchserve") == ["ts", "torch", "onnxruntime", "tensorflow",
                                                   "ai_edge_litert.interpreter"]


@pytest.mark.docker
def test_the_torchserve_image_holds_what_the_served_formats_need():
    needed = images.served_modules("torchserve")
    assert images.missing_modules(docker_image(TORCHSERVE), needed) == []
    # the check sees what an image lacks (the base image has Python but none of them)
    assert images.missing_modules(docker_image(BASE), needed) == needed


@pytest.mark.docker
def test_a_build_removes_its_own_intermediate_stages_and_no_other_image(tmp_path):
    docker_image(BASE)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE} AS first\nARG DC_BUILD=\"\"\nLABEL deploy-compare.build=${{DC_BUILD}}\n"
                          f"FROM {BASE}\nLABEL deploy-compare.test=i\n", encoding="utf-8")
    tag = f"deploy-compare-test/two-stage:{os.getpid()}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    # an untagged, labelled stage of "another build" (e.g. a concurrent `make images`): it must stay
    other = subprocess.run(["docker", "build", "-q", "--target", "first", "--build-arg", "DC_BUILD=another-build",
                            str(tmp_path)], check=True, capture_output=True, text=True, timeout=300,
                           env=env).stdout.split()[-1]
    try:
        removed = images.docker_build(dockerfile, tmp_path, tag, tmp_path / "build.log", {}, {"x": "y"})
        assert len(removed) == 1 and not other.endswith(removed[0])  # the first stage, untagged, of this build
        assert subprocess.run(["docker", "image", "inspect", removed[0]], capture_output=True,
                              timeout=60).returncode != 0
        assert images.image_exists(tag) and images.image_exists(other)
    finally:
        subprocess.run(["docker", "rmi", tag, other], capture_output=True, timeout=120, check=False)


@pytest.mark.docker
def test_the_toolkit_runs_as_uid_1000_on_a_read_only_file_system():
    """`deploy-compare --help`, and the compiled protos and stubs it needs, with nothing writable (no tmpfs)."""
    image = docker_image(TOOLKIT)
    if not any(e.startswith("DEPLOY_COMPARE_CACHE=") for e in images.inspect(image)["Config"]["Env"] or []):
        pytest.skip(f"{image} was built before the toolkit compiled its protos at build time: run `make images`")
    run = ["docker", "run", "--rm", "--read-only", "--user", "1000:1000", "--network", "none", image]
    helped = subprocess.run([*run, "deploy-compare", "--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "usage: deploy-compare" in helped.stdout, helped.stderr[-2000:]
    code = ("import deploy_compare; from deploy_compare.serving import grpc_stubs; "
            "from deploy_compare.serving.tfserving import config; pb, _ = grpc_stubs.load(); "
            "print(config.monitoring_config()); print(pb.__file__); print(deploy_compare.__file__)")
    stubs = subprocess.run([*run, "python", "-c", code], capture_output=True, text=True, timeout=300)
    assert stubs.returncode == 0 and "prometheus_config" in stubs.stdout, stubs.stderr[-2000:]
    *_, stub_file, package_file = stubs.stdout.split()
    assert not stub_file.startswith(package_file.rsplit("/", 2)[0] + "/")  # compiled outside the sources
