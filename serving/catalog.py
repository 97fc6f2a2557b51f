"""Single source of truth for what is served and where: served model names, default ports (used
by `deploy-compare serve --fixed-ports` and by docker-compose.yml, which a test checks against this
module), and the artifacts a run serves, verified against the manifest before anything starts."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from models.exporters.base import ArtifactRecord, Manifest, digest

# Default ports: the servers' documented defaults. Native runs pick free ports unless asked for these.
DEFAULT_PORTS: dict[str, dict[str, int]] = {
    "torchserve": {"inference": 8080, "management": 8081, "metrics": 8082, "grpc_inference": 7070,
                   "grpc_management": 7071},
    "tfserving": {"grpc": 8500, "rest": 8501},
}
# Where the servers see their files inside a container (also used by docker-compose.yml).
CONTAINER_PATHS: dict[str, dict[str, str]] = {
    "torchserve": {"model_store": "/home/model-server/model-store", "state": "/home/model-server/dc"},
    "tfserving": {"models": "/models", "state": "/etc/deploy-compare"},
}
# What each server serves: (artifact format, source framework).
SERVED_FORMATS: dict[str, tuple[tuple[str, str], ...]] = {
    "torchserve": (("torchscript", "pytorch"), ("onnx", "pytorch")),
    "tfserving": (("savedmodel", "tensorflow"),),
}


def served_name(twin: str, fmt: str) -> str:
    """Model name on the server, e.g. `mlp-torchscript` (letters, digits and '-' only)."""
    return f"{twin}-{fmt}"


class ArtifactMismatch(RuntimeError):
    """An artifact on disk is not the one the manifest recorded: refused before serving."""


class PortInUse(RuntimeError):
    pass


@dataclass(frozen=True)
class ServedModel:
    twin: str
    format: str
    served_name: str
    path: Path  # absolute, inside the run folder
    layout: str  # input layout the served model takes
    input_shape: tuple[int, ...]  # per sample, in `layout`
    input_dtype: str
    sha256: str
    input_name: str = ""  # signature input / output names (TF Serving's gRPC tensors are keyed by them)
    output_name: str = ""


def verified_model(run_root: Path, rec: ArtifactRecord) -> ServedModel:
    """The served model for a manifest record, after checking its sha256 and that it lies inside the
    run folder. Raises `ArtifactMismatch` naming the artifact otherwise."""
    root = Path(run_root).resolve()
    path = (root / rec.path).resolve()
    if root not in path.parents:
        raise ArtifactMismatch(f"artifact {rec.key} ({rec.format}) at {path} is outside the run folder {root}: "
                               "refused (artifacts are loaded only from the run's own folder)")
    if not path.exists():
        raise ArtifactMismatch(f"artifact {rec.key} ({rec.format}) is missing: {path}; rerun the export stage")
    actual, _ = digest(path)
    if actual != rec.sha256:
        raise ArtifactMismatch(f"artifact {rec.key} ({rec.format}) at {path} does not match the manifest "
                               f"(sha256 {actual[:12]}... != recorded {rec.sha256[:12]}...): refused to serve it; "
                               "rerun the export stage or restore the file")
    spec = rec.inputs[0]
    return ServedModel(twin=rec.twin, format=rec.format, served_name=served_name(rec.twin, rec.format), path=path,
                       layout=rec.layout, input_shape=tuple(int(d) for d in spec.shape[1:] if d is not None),
                       input_dtype=spec.dtype, sha256=rec.sha256, input_name=spec.name,
                       output_name=rec.outputs[0].name if rec.outputs else "")


def served_models(run_root: Path, manifest: Manifest, server: str, twins: list[str] | None = None,
                  formats: list[str] | None = None) -> list[ServedModel]:
    """Every fp32 artifact of `server`'s formats in the manifest (optionally only `twins` / `formats`),
    verified against the manifest."""
    out = []
    for rec in manifest.artifacts:
        if rec.variant != "fp32" or (rec.format, rec.source_framework) not in SERVED_FORMATS[server]:
            continue
        if (twins is not None and rec.twin not in twins) or (formats is not None and rec.format not in formats):
            continue
        out.append(verified_model(run_root, rec))
    return out


def check_port_free(port: int, role: str, host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"port {port} ({role}) on {host} is already taken ({exc.strerror}); stop what uses it, "
                            "or let deploy-compare choose free ports (omit --fixed-ports)") from None


def allocate_ports(server: str, fixed: bool) -> dict[str, int]:
    """Ports for one server: the defaults (checked free, else a clear `PortInUse` before anything
    starts) or free loopback ports chosen now and recorded with the results."""
    ports: dict[str, int] = {}
    held: list[socket.socket] = []
    try:
        for role, default in DEFAULT_PORTS[server].items():
            if fixed:
                check_port_free(default, f"{server} {role}")
                ports[role] = default
            else:  # keep each socket open until all are chosen so no two roles get the same port
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                held.append(s)
                ports[role] = s.getsockname()[1]
    finally:
        for s in held:
            s.close()
    return ports
