"""What a load generator needs to talk to one served model: the contract between `serving/` and
`loadtests/`. An `Endpoint` is runtime data (it may carry an auth header); what is saved with
results is `Endpoint.describe()`, which never contains a secret.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deploy_compare.core.kinds import Layout, Protocol


@dataclass(frozen=True)
class TensorSignature:
    """How TF Serving's gRPC API names a model's tensors (its requests and answers are keyed by them)."""

    input_name: str
    output_name: str
    signature_name: str = "serving_default"


@dataclass
class Endpoint:
    stack: str  # e.g. "torchserve/torchscript", "tfserving/savedmodel"
    server: str  # torchserve | tfserving | null | external
    protocol: Protocol
    model: str  # twin name (selects the held-out payloads)
    served_name: str  # model name on the server
    target: str  # REST: full predict URL (http://127.0.0.1:PORT/...); gRPC: host:port
    layout: Layout  # the input layout the endpoint expects
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a token: never saved
    server_pids: list[int] = field(default_factory=list)  # for CPU accounting and fault tests
    server_cpus: list[int] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # a record only (saved, never read): workers, versions...
    metrics_url: str = ""  # the server's Prometheus metrics ("" = none known)
    signature: TensorSignature | None = None  # TF Serving gRPC: the tensor names (None for other endpoints)
    launcher: str = ""  # native | docker ("" when not started by this toolkit); set by the server session
    variant: str = "fp32"  # the artifact's variant: quantized ones (TFLite int8-dynamic, fp16) report parity, ungated

    def describe(self) -> dict[str, Any]:
        """Saved with results: everything but secrets."""
        return {"stack": self.stack, "server": self.server, "protocol": self.protocol, "model": self.model,
                "served_name": self.served_name, "target": self.target, "layout": self.layout,
                "launcher": self.launcher, "variant": self.variant,
                "server_cpus": list(self.server_cpus), "settings": dict(self.settings),
                "metrics_url": self.metrics_url, "signature": asdict(self.signature) if self.signature else None,
                "auth": "token" if self.headers else "none"}
