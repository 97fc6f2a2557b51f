"""docker-compose.yml: agrees with the code (ports, container paths, images), and the stack really runs
with Debian's docker-compose 1.29: prepare -> TorchServe -> locust master + worker, headless, results in
the run folder, then down with nothing left (containers, network, volume). TF Serving's service stays in
the file behind the `tfserving` profile; here its image is absent and the stack runs without it."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_compare.serving.catalog import CONTAINER_PATHS, DEFAULT_PORTS
from deploy_compare.serving.compose import TORCHSERVE_CONFIG_MOUNT
from deploy_compare.serving.images import TOOLKIT_IMAGE, TORCHSERVE_IMAGE
from deploy_compare.serving.tfserving.server import TFServing
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
ENV = {"RUN_ID": "r", "DC_RESULTS": "/res"}


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
                       r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution (the compose file spec's "Interpolation"): `$VAR`, `${VAR}`, `${VAR:-default}`
    (unset or empty), `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (an error naming VAR), and
    `$$` for a literal `$`. Unset variables without a default become empty, as docker-compose does (it warns)."""
    def one(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["plain"] or m["name"]
        value, op = env.get(name), m["op"] or ""
        missing = value is None or (op.startswith(":") and value == "")
        if missing and op.endswith("-"):
            return m["arg"]
        if missing and op.endswith("?"):
            raise ValueError(f"required variable {name} is missing a value: {m['arg']}")
        return value or ""
    return _VARIABLE.sub(one, text)


def _env() -> dict[str, str]:
    """The environment both paths resolve the file in: the caller's, without its DC_/COMPOSE_ settings, plus ENV."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DC_", "COMPOSE_"))} | ENV


def _config(use_compose: bool) -> dict:
    """The file resolved with its variables filled (defaults where unset): by docker-compose itself, or by
    `interpolate` when docker-compose is absent (a fresh machine)."""
    if not use_compose:
        return yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(), _env()))
    out = subprocess.run([shutil.which("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, env=_env(), timeout=60, check=True)
    return yaml.safe_load(out.stdout)


def _mounts(svc: dict) -> dict[str, str]:
    out = {}
    for v in svc.get("volumes", []):
        src, dst = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
        out[src] = dst
    return out


def test_interpolate_follows_the_compose_spec():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET} $SET ${SET:-d} ${SET-d} ${SET:?m} $$SET", env) == "v v v v v $SET"
    assert interpolate("[${EMPTY:-d}] [${EMPTY-d}] [${UNSET:-d}] [${UNSET-d}] [${UNSET}] [${UNSET:-}]", env) \
        == "[d] [] [d] [d] [] []"
    assert interpolate("${EMPTY?m}", env) == ""
    for text in ("${UNSET:?set UNSET}", "${EMPTY:?set EMPTY}", "${UNSET?set UNSET}"):
        with pytest.raises(ValueError, match="set "):
            interpolate(text, env)
    assert "${" not in interpolate((ROOT / "docker-compose.yml").read_text(), ENV)


def _resolvers() -> list:
    """docker-compose's own resolution when it is installed, and always the fallback a fresh machine takes."""
    compose = shutil.which("docker-compose") is not None
    return [pytest.param(True, id="docker-compose", marks=pytest.mark.skipif(
        not compose, reason="docker-compose is not installed (apt-get install docker-compose): the fallback "
                            "resolution is checked instead")),
            pytest.param(False, id="fallback")]


@pytest.mark.parametrize("use_compose", _resolvers())
def test_compose_file_agrees_with_the_code(use_compose):
    services = _config(use_compose)["services"]
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
    cmd = services["torchserve"]["command"]  # the serving log config `python -m deploy_compare.serving.compose` writes
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
@pytest.fixture(scope="session")  # session, first argument: it skips before the session's spine_run is trained
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
