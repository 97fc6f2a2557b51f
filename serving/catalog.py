"""Single source of truth for what is served and where: served model names, default ports (used
by `deploy-compare serve --fixed-ports` and by docker-compose.yml, which a test checks against this
module), and the artifacts a run serves, verified against the manifest before anything starts."""
from __future__ import annotations

import fnmatch
import socket
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.models.exporters.base import ArtifactRecord, Manifest, digest

# Default ports: the servers' documented defaults. Native runs pick free ports unless asked for these.
DEFAULT_PORTS: dict[str, dict[str, int]] = {
    "torchserve": {"inference": 8080, "management": 8081, "metrics": 8082, "grpc_inference": 7070,
                   "grpc_management": 7071},
    "tfserving": {"grpc": 8500, "rest": 8501},
    # Ray Serve's proxies (http, grpc), its Prometheus export (metrics) and every port of the Ray head it runs
    # (serving/rayserve/config.py); the worker port range is chosen apart (serving/rayserve/server.py)
    "rayserve": {"http": 8000, "grpc": 9000, "metrics": 8092, "gcs": 6379, "node_manager": 6380,
                 "object_manager": 8076, "client_server": 10001, "dashboard": 8265, "dashboard_agent": 52365,
                 "dashboard_agent_grpc": 52366, "runtime_env_agent": 52367, "autoscaler_metrics": 44217,
                 "dashboard_metrics": 44227},
}
# Where the servers see their files inside a container (also used by docker-compose.yml).
CONTAINER_PATHS: dict[str, dict[str, str]] = {
    "torchserve": {"model_store": "/home/model-server/model-store", "state": "/home/model-server/dc"},
    "tfserving": {"models": "/models", "state": "/etc/deploy-compare"},
}


@dataclass(frozen=True)
class ServedFormat:
    """One row of what a server serves: the artifacts of one exporter (and which of its variants).

    Served names and stacks are named by the exporter, so two exporters of one format stay apart
    (`mlp-onnx-torch`, `mlp-onnx-tf`); a quantized variant adds its name (`mlp-tflite-int8-dynamic`).
    Quantized variants are served and their parity reported, never gated (conventions rule 9)."""

    exporter: str  # the manifest's exporter name (models/exporters/)
    format: str  # artifact format: selects the loader in the server (TorchServe: handler.LOADERS)
    framework: str  # source framework of the artifact
    runtime: str  # the in-process runtime (models/runtimes/) running the same artifact: the floor row beside it
    variants: tuple[str, ...] = ("fp32",)


# What each server serves, one row per exporter. A new format is a row here (and, for TorchServe, a loader in
# serving/torchserve/handler.py LOADERS).
SERVED_FORMATS: dict[str, tuple[ServedFormat, ...]] = {
    "torchserve": (
        ServedFormat("torchscript", "torchscript", "pytorch", "torchscript"),
        ServedFormat("onnx-torch", "onnx", "pytorch", "onnxruntime"),
        ServedFormat("torch-export", "torch-export", "pytorch", "torch-export"),
        ServedFormat("aoti", "aoti", "pytorch", "aoti"),
        ServedFormat("savedmodel", "savedmodel", "tensorflow", "savedmodel"),
        ServedFormat("tflite", "tflite", "tensorflow", "tflite", ("fp32", "int8-dynamic", "fp16")),
        ServedFormat("onnx-tf", "onnx", "tensorflow", "onnxruntime"),
        ServedFormat("onnx-file", "onnx", "onnx", "onnxruntime"),  # a user's own ONNX file (run --model)
    ),
    "tfserving": (ServedFormat("savedmodel", "savedmodel", "tensorflow", "savedmodel"),),
    # Ray Serve: every fp32 artifact of both columns, each in the project's own in-process runtime
    "rayserve": (
        ServedFormat("savedmodel", "savedmodel", "tensorflow", "savedmodel"),
        ServedFormat("tflite", "tflite", "tensorflow", "tflite"),
        ServedFormat("torchscript", "torchscript", "pytorch", "torchscript"),
        ServedFormat("onnx-torch", "onnx", "pytorch", "onnxruntime"),
        ServedFormat("onnx-tf", "onnx", "tensorflow", "onnxruntime"),
    ),
}


def flavor(exporter: str, variant: str = "fp32") -> str:
    """What a served model is, without its twin: `onnx-torch`, `tflite`, `tflite-int8-dynamic`."""
    return exporter if variant == "fp32" else f"{exporter}-{variant}"


def served_name(twin: str, exporter: str, variant: str = "fp32") -> str:
    """Model name on the server, e.g. `mlp-torchscript`, `mlp-onnx-tf` (letters, digits and '-' only)."""
    return f"{twin}-{flavor(exporter, variant)}"


def stack_name(server: str, exporter: str, variant: str = "fp32") -> str:
    """The stack a served model is measured as: `torchserve/onnx-torch`, `tfserving/savedmodel`."""
    return f"{server}/{flavor(exporter, variant)}"


def served_format(stack: str) -> tuple[ServedFormat, str] | None:
    """The row and variant behind a stack name (`torchserve/tflite-fp16` -> (tflite row, "fp16")), or None
    for a stack this catalog does not list (e.g. results of an older run)."""
    server, _, rest = stack.partition("/")
    for row in SERVED_FORMATS.get(server, ()):
        for variant in row.variants:
            if flavor(row.exporter, variant) == rest:
                return row, variant
    return None


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
    exporter: str = ""  # the manifest's exporter (served names and stacks are named by it)
    variant: str = "fp32"
    framework: str = ""  # source framework

    @property
    def gated(self) -> bool:
        """Served parity gates fp32 models only; quantized variants report theirs."""
        return self.variant == "fp32"

    def stack(self, server: str) -> str:
        return stack_name(server, self.exporter or self.format, self.variant)


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
    return ServedModel(twin=rec.twin, format=rec.format, served_name=served_name(rec.twin, rec.exporter, rec.variant),
                       path=path, layout=rec.layout,
                       input_shape=tuple(int(d) for d in spec.shape[1:] if d is not None),
                       input_dtype=spec.dtype, sha256=rec.sha256, input_name=spec.name,
                       output_name=rec.outputs[0].name if rec.outputs else "", exporter=rec.exporter,
                       variant=rec.variant, framework=rec.source_framework)


def served_models(run_root: Path, manifest: Manifest, server: str, twins: list[str] | None = None,
                  formats: list[str] | None = None, exclude: tuple[str, ...] = ()) -> list[ServedModel]:
    """Every artifact of `server`'s rows in the manifest (their listed variants; optionally only `twins`, and
    only `formats` given as exporter names, e.g. `onnx-tf`; without the served names matching an `exclude`
    pattern), verified against the manifest."""
    rows = {(r.exporter, r.format, r.framework): r for r in SERVED_FORMATS[server]}
    out = []
    for rec in manifest.artifacts:
        row = rows.get((rec.exporter, rec.format, rec.source_framework))
        if row is None or rec.variant not in row.variants:
            continue
        if (twins is not None and rec.twin not in twins) or (formats is not None and rec.exporter not in formats):
            continue
        model = verified_model(run_root, rec)
        if any(fnmatch.fnmatchcase(model.served_name, pattern) for pattern in exclude):
            continue
        out.append(model)
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
