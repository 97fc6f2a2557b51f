"""What a load generator needs to talk to one served model: the contract between `serving/` and
`loadtests/`. An `Endpoint` is runtime data (it may carry an auth header); what is saved with
results is `Endpoint.describe()`, which never contains a secret.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Endpoint:
    stack: str  # e.g. "torchserve/torchscript", "tfserving/savedmodel"
    server: str  # torchserve | tfserving | null | external
    protocol: str  # rest | grpc
    model: str  # twin name (selects the held-out payloads)
    served_name: str  # model name on the server
    target: str  # REST: full predict URL (http://127.0.0.1:PORT/...); gRPC: host:port
    layout: str  # input layout the endpoint expects: NHWC | NCHW | NF
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a token: never saved
    server_pids: list[int] = field(default_factory=list)  # for CPU accounting and fault tests
    server_cpus: list[int] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # workers, batching, launcher, versions...
    launcher: str = ""  # native | docker ("" when not started by this toolkit); set by the server session

    def describe(self) -> dict[str, Any]:
        """Saved with results: everything but secrets."""
        return {"stack": self.stack, "server": self.server, "protocol": self.protocol, "model": self.model,
                "served_name": self.served_name, "target": self.target, "layout": self.layout,
                "launcher": self.launcher,
                "server_cpus": list(self.server_cpus), "settings": dict(self.settings),
                "auth": "token" if self.headers else "none"}
