"""Command-line options of the locustfiles (`--api`, `--model-name`, `--payload`, `--twin`, `--layout`,
`--batch-size`, `--token-file`, `--headers-file`, `--input-name`, `--connections`, and the pipeline's
`--dc-plan` / `--dc-out`), and the request configuration of this process, set once before any load.

The requests are pre-built bytes, so sending costs no serialization. With `--dc-plan` they come in the
plan (built by the orchestrator, `deploy_compare.loadtests.requests`): the locust process imports no protobuf classes.
Run standalone, the locustfile builds them here from `--payload` with the same encoders: TorchServe's
from the stubs generated from its jar, TF Serving's from tensorflow-serving-api (which imports
TensorFlow into this process once at start; use `deploy-compare loadtest` to keep it out)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from locust import events

from deploy_compare.loadtests.rawgrpc import RawGrpcSender
from deploy_compare.loadtests.rawhttp import RawHttpSender
from deploy_compare.loadtests.senders import API_PATHS, TFSERVING_PREDICT, TORCHSERVE_PREDICT, RestSender


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    g = parser.add_argument_group("deploy-compare endpoint and payload")
    g.add_argument("--api", choices=sorted(API_PATHS), default="tfserving",
                   help="REST API style: tfserving (/v1/models/M:predict) or torchserve (/predictions/M)")
    g.add_argument("--model-name", default="model", help="served model name")
    g.add_argument("--predict-path", default="", help="REST path overriding the --api default")
    g.add_argument("--payload", default="", help="run folder (with --twin), .npy or .npz (array `x`)")
    g.add_argument("--twin", default="", help="twin whose held-out batch to send when --payload is a run folder")
    g.add_argument("--layout", default="", help="input layout the endpoint expects (NHWC, NCHW, NF)")
    g.add_argument("--source-layout", default="", help="layout of the payload file (default: canonical)")
    g.add_argument("--batch-size", type=int, default=1, help="instances per request")
    g.add_argument("--token-file", default="",
                   help="bearer token: a plain-text file or TorchServe's key_file.json (inference key)")
    g.add_argument("--headers-file", default="", help="JSON object of extra request headers / gRPC metadata")
    g.add_argument("--input-name", default="inputs", help="TF Serving gRPC: the signature's input name")
    g.add_argument("--signature-name", default="serving_default", help="TF Serving gRPC: signature name")
    g.add_argument("--connections", type=int, default=64, help="open loop: requests in flight at most")
    g.add_argument("--dc-plan", default="", help="(deploy-compare) JSON plan to run; writes --dc-out")
    g.add_argument("--dc-out", default="", help="(deploy-compare) where to write the raw results")


@dataclass
class Config:
    host: str
    sender_kind: str  # rest | grpc-torchserve | grpc-tfserving
    path: str
    headers: dict[str, str]
    rest_bodies: list[bytes] = field(default_factory=list)
    grpc_requests: list[bytes] = field(default_factory=list)
    connections: int = 64

    def make_sender(self, environment: Any, concurrency: int = 1, session: Any = None) -> Any:
        if self.sender_kind == "rest" and session is None and self.host.startswith("http://"):
            return RawHttpSender(environment, self.host, self.path, self.rest_bodies, self.headers,
                                 max_connections=concurrency)
        if self.sender_kind == "rest":
            return RestSender(environment, self.host, self.path, self.rest_bodies, self.headers,
                              concurrency=concurrency, session=session)
        method = TORCHSERVE_PREDICT if self.sender_kind == "grpc-torchserve" else TFSERVING_PREDICT
        metadata = [(k.lower(), v) for k, v in self.headers.items()]
        target = self.host.split("://", 1)[-1].rstrip("/")
        return RawGrpcSender(environment, target, method, self.grpc_requests, metadata, name=method,
                             max_connections=concurrency)


class _Process:
    config: Config | None = None  # this locust process's request configuration, set once at init


def config() -> Config:
    if _Process.config is None:
        raise RuntimeError("deploy-compare harness is not configured (locust init did not run)")
    return _Process.config


def configured() -> bool:
    return _Process.config is not None


def read_headers(token_file: str, headers_file: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    if headers_file:
        with open(headers_file, encoding="utf-8") as fh:
            loaded = json.load(fh)
        if not isinstance(loaded, dict):
            raise ValueError(f"--headers-file {headers_file} must hold a JSON object")
        headers.update({str(k): str(v) for k, v in loaded.items()})
    if token_file:
        with open(token_file, encoding="utf-8") as fh:
            text = fh.read().strip()
        token = text
        if text.startswith("{"):
            keys = json.loads(text)  # TorchServe key_file.json: {"inference": {"key": ...}, ...}
            try:
                token = keys["inference"]["key"]
            except (KeyError, TypeError):
                raise ValueError(f"--token-file {token_file}: JSON without an inference key") from None
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _sender_kind(environment: Any) -> str:
    kinds = {getattr(cls, "sender_kind", "rest") for cls in environment.user_classes}
    if len(kinds) != 1:
        raise ValueError(f"the locustfile must define users of one protocol, found {sorted(kinds)}")
    return kinds.pop()


# sender kind -> the server whose client encodes its requests (standalone runs)
_SERVER_OF = {"grpc-torchserve": "torchserve", "grpc-tfserving": "tfserving", "rest": "external"}


def standalone_requests(opts: Any, kind: str) -> list[bytes]:
    """The requests of a standalone run, from `--payload` (see the module doc)."""
    from deploy_compare.loadtests.payload import build_payload
    from deploy_compare.loadtests.requests import wire_requests
    from deploy_compare.serving.endpoint import Endpoint, TensorSignature

    if not opts.payload:
        raise ValueError("--payload is required: a run folder (with --twin), or a .npy/.npz of real inputs")
    payload = build_payload(opts.payload, twin=opts.twin or None, layout=opts.layout or None,
                            source_layout=opts.source_layout or None, batch_size=opts.batch_size)
    protocol = "rest" if kind == "rest" else "grpc"
    endpoint = Endpoint(stack=f"{_SERVER_OF[kind]}/locustfile", server=_SERVER_OF[kind], protocol=protocol,
                        model=opts.twin or opts.model_name, served_name=opts.model_name, target="",
                        layout=payload.layout, signature=TensorSignature(opts.input_name, "", opts.signature_name))
    return wire_requests(endpoint, payload.batches())


def configure(environment: Any) -> None:
    """Set this process's requests and sender settings from the plan or the (custom) options."""
    from deploy_compare.core.results import load
    from deploy_compare.loadtests.plan import Plan

    opts = environment.parsed_options
    kind = _sender_kind(environment)
    requests = load(Plan, opts.dc_plan).wire_requests() if opts.dc_plan else []
    if not requests:
        requests = standalone_requests(opts, kind)
    host = (opts.host or environment.host or "").rstrip("/")
    path = opts.predict_path or API_PATHS[opts.api].format(model=opts.model_name)
    cfg = Config(host=host, sender_kind=kind, path=path, headers=read_headers(opts.token_file, opts.headers_file),
                 connections=opts.connections)
    if kind == "rest":
        cfg.rest_bodies = requests
    else:
        cfg.grpc_requests = requests
    _Process.config = cfg
