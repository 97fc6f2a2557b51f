"""docker-compose.yml: agrees with the code (ports, container paths, images), and the stack really runs
with Debian's docker-compose 1.29: prepare -> TorchServe -> locust master + worker, headless, results in
the run folder, then down with nothing left (containers, network, volume). TF Serving's service stays in
the file behind the `tfserving` profile; here its image is absent and the stack runs without it."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from serving.catalog import CONTAINER_PATHS, DEFAULT_PORTS
from serving.compose import TORCHSERVE_CONFIG_MOUNT
from serving.images import TOOLKIT_IMAGE, TORCHSERVE_IMAGE
from serving.tfserving.server import TFServing
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
ENV = {"RUN_ID": "r", "DC_RESULTS": "/res"}


def _config() -> dict:
    """The file as docker-compose itself resolves it (variables filled with their defaults)."""
    exe = shutil.which("docker-compose")
    if exe is None:  # the raw file, defaults substituted by hand
        text = (ROOT / "docker-compose.yml").read_text()
        for key, value in ENV.items():
            text = text.replace("${" + key + "}", value).replace("${" + key + ":-./results}", value)
        return yaml.safe_load(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DC_", "COMPOSE_"))} | ENV
    out = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True,
                         env=env, timeout=60, check=True)
    return yaml.safe_load(out.stdout)


def _mounts(svc: dict) -> dict[str, str]:
    out = {}
    for v in svc.get("volumes", []):
        src, dst = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
        out[src] = dst
    return out


def test_compose_file_agrees_with_the_code():
    services = _config()["services"]
    assert {"prepare", "tfserving", "torchserve", "locust-master", "locust-worker", "toolkit"} <= set(services)
    assert services["torchserve"]["image"] == TORCHSERVE_IMAGE
    assert services["tfserving"]["image"] == TFServing.image
    assert services["prepare"]["image"] == services["locust-master"]["image"] == TOOLKIT_IMAGE
    for name in ("torchserve", "tfserving"):
        inside = sorted(str(p).rsplit(":", 1)[1].split("/")[0] for p in services[name]["ports"])
        assert inside == sorted(str(p) for p in DEFAULT_PORTS[name].values()), name
    for svc in services.values():  # nothing published beyond loopback
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", []))
    ts = _mounts(services["torchserve"])
    assert ts["/res/r/artifacts/torchserve"] == CONTAINER_PATHS["torchserve"]["model_store"]
    assert services["torchserve"]["working_dir"] == CONTAINER_PATHS["torchserve"]["state"]
    cmd = services["torchserve"]["command"]  # the serving log config `python -m serving.compose` writes
    assert cmd[cmd.index("--log-config") + 1] == f"{TORCHSERVE_CONFIG_MOUNT}/log4j2.xml"
    assert ts["/res/r/compose/torchserve"] == TORCHSERVE_CONFIG_MOUNT
    assert _mounts(services["tfserving"])["/res/r/artifacts/tfserving"] == CONTAINER_PATHS["tfserving"]["models"]
    assert services["tfserving"]["profiles"] == ["tfserving"]  # started only where its image can be had
    tfs_cmd = services["tfserving"]["command"]
    for flag, name in (("model_config_file", "models.config"), ("batching_parameters_file", "batching.config"),
                       ("monitoring_config_file", "monitoring.config")):
        assert f"--{flag}={CONTAINER_PATHS['tfserving']['models']}/config/{name}" in tfs_cmd
    master = services["locust-master"]["command"]
    assert master[master.index("--host") + 1] == f"http://torchserve:{DEFAULT_PORTS['torchserve']['inference']}"
    assert master[master.index("--token-file") + 1] == CONTAINER_PATHS["torchserve"]["state"] + "/key_file.json"
    assert "--headless" in master


# --- the stack, for real -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_ready():
    docker = pytest.importorskip("docker")
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine: {exc} (start one with scripts/docker-engine.sh start)")
    for image in (TOOLKIT_IMAGE, TORCHSERVE_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.skip(f"image {image} is not present (build it: make images)")
    return client


def _left(client, project: str) -> list[str]:
    label = {"label": f"com.docker.compose.project={project}"}
    return ([f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
            + [f"network {n.name}" for n in client.networks.list(filters=label)]
            + [f"volume {v.name}" for v in client.volumes.list(filters=label)])


@pytest.mark.docker
@pytest.mark.integration
def test_compose_stack_runs_headless_locust_and_leaves_nothing(compose_ready, spine_run, tmp_path):
    run = tmp_path / "results" / "compose-run"  # a copy: the stack writes into its run folder
    shutil.copytree(spine_run.path, run, ignore=shutil.ignore_patterns("logs"))
    (run / "logs").mkdir()
    project = f"dc-test-{os.getpid()}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DC_", "COMPOSE_"))},
           "DC_TWINS": "mlp", "DC_USERS": "2", "DC_RUN_TIME": "5s",
           **{f"DC_TS_{role}_PORT": str(free_port()) for role in ("INFERENCE", "MANAGEMENT", "METRICS", "GRPC",
                                                                  "GRPC_MANAGEMENT")}}
    try:
        out = subprocess.run([str(ROOT / "scripts" / "compose-stack.sh"), str(run), project], capture_output=True,
                             text=True, env=env, timeout=420)
    finally:
        left = _left(compose_ready, project)
        if left:  # never leave the stack behind, even when the script itself failed
            subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "-p", project, "down", "-v",
                            "--remove-orphans"], env={**env, "RUN_ID": run.name, "DC_RESULTS": str(run.parent)},
                           capture_output=True, timeout=120)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    tfserving_here = subprocess.run(["docker", "image", "inspect", TFServing.image], capture_output=True,
                                    timeout=60).returncode == 0
    assert tfserving_here or "tfserving: not started" in out.stdout  # the stack says it ran without TF Serving
    assert left == [], f"left behind: {left}"
    with open(run / "compose" / "locust_stats.csv", encoding="utf-8") as fh:
        total = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0 and int(total["Failure Count"]) == 0, total
    assert (run / "compose" / "torchserve" / "config.properties").is_file()
    assert (run / "logs" / "compose-servers.log").stat().st_size > 0
