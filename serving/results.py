"""What the serve stage saves (`serving.json`): per server, the settings it ran with, its endpoints
(no secrets), cold start, served parity, a first sequential latency per endpoint and the server-side
metrics around each load window; servers that could not run are `NotRun` records."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deploy_compare.core.results import Measurement, NotRun
from deploy_compare.models.parity import ParityOutcome, ParityTolerance
from deploy_compare.serving.metrics import MetricsWindow


@dataclass
class ServedParity(ParityOutcome):
    stack: str
    protocol: str
    served_name: str
    twin: str
    layout: str
    variant: str = "fp32"  # quantized variants: figures reported, not gated (`figures.gated` False)


@dataclass
class ColdStart:
    """Cold start, each figure on its own: process start -> ready, model load (the server's own metrics),
    first request."""

    server: str
    launcher: str
    start_to_ready_s: float  # from `started_by` to ready
    model_load_s: dict[str, float] = field(default_factory=dict)  # served name -> seconds (server metric)
    model_load_source: str = ""
    first_request_s: dict[str, float] = field(default_factory=dict)  # "<served name>/<protocol>" -> seconds
    first_request_errors: dict[str, str] = field(default_factory=dict)  # same keys: why the first request failed
    started_by: str = "process start"  # where the clock starts: "process start" (native) | "container create"


@dataclass
class WorkerMemory:
    """One model's worker process (TorchServe: the Python process running the handler)."""

    pid: int
    rss_bytes: int  # current RSS
    peak_rss_bytes: int  # its high-water mark (VmHWM)
    source: str = "psutil"  # how it was found: psutil on the worker's pid (matched by its socket name)


@dataclass
class ServerMemory:
    """The server's whole process tree (frontend and workers), sampled at a phase of the stage."""

    phase: str  # "ready" (models loaded, idle) | "after <stage>" (the last stage that used it, just before stop)
    rss_bytes: int  # summed current RSS
    peak_rss_bytes: int  # summed per-process high-water mark (VmHWM)
    processes: int
    # Docker launcher: the container's own cgroup (what the container costs, runtime and page cache included)
    cgroup_usage_bytes: int | None = None  # memory.usage as the kernel counts it
    cgroup_working_set_bytes: int | None = None  # usage - inactive file pages (what `docker stats` shows)
    # each served model's worker process on its own: served name -> its RSS (`Server.worker_memory`)
    workers: dict[str, WorkerMemory] = field(default_factory=dict)
    workers_error: str = ""  # why the per-worker split is missing, if it is


@dataclass
class ServerRun:
    server: str
    launcher: str
    settings: dict[str, Any]
    log: str  # server console log, relative to the run folder
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # Endpoint.describe()
    cold_start: ColdStart | None = None
    parity: list[ServedParity] = field(default_factory=list)
    sequential: list[Measurement] = field(default_factory=list)  # "<stack>/<served name>/<protocol>", batch 1
    metrics: list[MetricsWindow] = field(default_factory=list)
    memory: list[ServerMemory] = field(default_factory=list)
    timed: list[str] = field(default_factory=list)  # "<served name>/<protocol>" that passed parity and were timed
    error: str = ""  # the server failed (start, parity, ...): what and where


@dataclass
class ServingResults:
    run_id: str
    launcher_requested: str
    tolerance: ParityTolerance
    probe: dict[str, float]  # the sequential probe's window policy
    servers: list[ServerRun] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    loadtest: str = ""  # set by the load stage: "ran" or why not ("" = no load stage used these servers)
    seconds: float = 0.0  # the serve stage's wall time (the load stage is timed on its own)
    opened_by: str = "serve"  # the stage that brought these servers up (serve, or load when run alone)
    session_seconds: float = 0.0  # servers up -> all stopped (both stages when `--stages serve load`)
