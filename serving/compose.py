"""Configs for docker-compose.yml, rendered by the same server code as the Docker launcher (fixed
default ports, 0.0.0.0 inside each container, container paths from `deploy_compare.serving.catalog`).

    python -m deploy_compare.serving.compose RUN_DIR [--twins=mlp,cnn]    # what the compose `prepare` service runs

writes `RUN_DIR/compose/torchserve/config.properties` (with its metrics.yaml and log4j2.xml),
`RUN_DIR/compose/tfserving/*.config` (via the TF Serving store) and the model
stores `RUN_DIR/artifacts/{torchserve,tfserving}`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from deploy_compare.core.config import ServeSettings
from deploy_compare.core.rundir import RunDir
from deploy_compare.serving.base import SERVERS
from deploy_compare.serving.catalog import DEFAULT_PORTS, served_models
from deploy_compare.serving.launchers.docker import DockerLauncher
from deploy_compare.serving.stacks import import_servers

# Files the compose services read, relative to the run folder (docker-compose.yml mounts these).
TORCHSERVE_CONFIG = "compose/torchserve/config.properties"
# where docker-compose.yml mounts that folder in the torchserve service (read-only)
TORCHSERVE_CONFIG_MOUNT = "/home/model-server/config"
COMPOSE_SERVICES = ("torchserve", "tfserving")  # the servers docker-compose.yml runs


def render(run_dir: RunDir, settings: ServeSettings | None = None) -> dict[str, Path]:
    from deploy_compare.models.exporters.stage import load_manifest

    import_servers()
    settings = replace(settings or ServeSettings(), launcher="docker", fixed_ports=True)
    manifest = load_manifest(run_dir)
    written: dict[str, Path] = {}
    for name in SERVERS.names():
        if name not in COMPOSE_SERVICES:  # Ray Serve has no compose service (its launchers run it)
            continue
        models = served_models(run_dir.path, manifest, name, list(settings.twins) or None,
                               list(settings.formats) or None, settings.exclude)
        server = SERVERS.get(name)(DockerLauncher(), settings, models, run_dir.artifacts / name,
                                   run_dir.logs / f"{name}.log", dict(DEFAULT_PORTS[name]), None)
        try:
            server.prepare()
            state = getattr(server, "state_dir", None)
            if state is not None:  # TorchServe: config.properties, metrics.yaml, log4j2.xml (never its key file)
                dest = run_dir.path / TORCHSERVE_CONFIG
                dest.parent.mkdir(parents=True, exist_ok=True)
                for extra in ("metrics.yaml", "log4j2.xml"):  # log4j2.xml: docker-compose.yml's --log-config
                    if (Path(state) / extra).exists():
                        shutil.copyfile(Path(state) / extra, dest.parent / extra)
                # the compose service mounts this folder, not the launcher's private state folder
                cfg = (Path(state) / "config.properties").read_text(encoding="utf-8")
                seen_state = server.config.metrics_config
                dest.write_text(cfg.replace(seen_state, f"{TORCHSERVE_CONFIG_MOUNT}/metrics.yaml"), encoding="utf-8")
                written[name] = dest
            else:
                written[name] = run_dir.artifacts / name / "config"
        finally:
            server.stop()  # nothing launched: removes the private state folder
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy_compare.serving.compose",
                                     description="render the compose configs")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--twins", default="", help="comma-separated twins to serve (empty: every twin)")
    args = parser.parse_args(argv)
    settings = ServeSettings(twins=tuple(t for t in args.twins.split(",") if t))
    for server_name, path in render(RunDir(args.run_dir.resolve()).require(), settings).items():
        print(f"{server_name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
