"""The locust-side machinery shared by every locustfile (imported only inside a locust process).

- Custom command-line options (`--api`, `--model-name`, `--payload`, `--twin`, `--layout`,
  `--batch-size`, `--token-file`, `--headers-file`, `--input-name`, `--connections`, and the
  pipeline's `--dc-plan` / `--dc-out`), registered with `events.init_command_line_parser`.
- The recorder: a `request` event listener appending each request's perf_counter time (ms) to the
  current phase's array; errors counted by kind. Cheap enough to keep >= 8,000 req/s per core.
- The controller (only with `--dc-plan`): runs a closed-loop sweep or open-loop points inside this
  process (or as a locust master directing `--worker` processes through custom messages), marks
  warm-up and measurement windows, records its CPU time per window, and writes a `RawRun` JSON.

Without `--dc-plan` the locustfiles behave like any locustfile (users, web UI, locust's own stats).
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.pool
import locust
import locust.runners
import psutil
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtests.plan import poisson_offsets
from loadtests.senders import (
    API_PATHS,
    TFSERVING_PREDICT,
    TORCHSERVE_PREDICT,
    GrpcSender,
    RestSender,
    error_kind,
    tfserving_request,
    torchserve_request,
)

# Workers report locust's stats to the master every 3 s by default; the controller uses those counts
# to close windows, so report more often.
locust.runners.WORKER_REPORT_INTERVAL = 0.5


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


# ------------------------------------------------------------------ configuration of this process
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
        if self.sender_kind == "rest":
            return RestSender(environment, self.host, self.path, self.rest_bodies, self.headers,
                              concurrency=concurrency, session=session)
        method = TORCHSERVE_PREDICT if self.sender_kind == "grpc-torchserve" else TFSERVING_PREDICT
        metadata = [(k.lower(), v) for k, v in self.headers.items()]
        target = self.host.split("://", 1)[-1].rstrip("/")
        return GrpcSender(environment, target, method, self.grpc_requests, metadata, name=method)


CONFIG: Config | None = None


def config() -> Config:
    if CONFIG is None:
        raise RuntimeError("deploy-compare harness is not configured (locust init did not run)")
    return CONFIG


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


def _configure(environment: Any) -> None:
    """Build this process's request bodies and sender settings from the (custom) options."""
    global CONFIG
    from loadtests.payload import build_payload

    opts = environment.parsed_options
    if not opts.payload:
        raise ValueError("--payload is required: a run folder (with --twin), or a .npy/.npz of real inputs")
    kind = _sender_kind(environment)
    host = (opts.host or environment.host or "").rstrip("/")
    payload = build_payload(opts.payload, twin=opts.twin or None, layout=opts.layout or None,
                            source_layout=opts.source_layout or None, batch_size=opts.batch_size)
    bodies = payload.rest_bodies()
    path = opts.predict_path or API_PATHS[opts.api].format(model=opts.model_name)
    cfg = Config(host=host, sender_kind=kind, path=path, headers=read_headers(opts.token_file, opts.headers_file),
                 rest_bodies=bodies, connections=opts.connections)
    if kind == "grpc-torchserve":
        cfg.grpc_requests = [torchserve_request(opts.model_name, b) for b in bodies]
    elif kind == "grpc-tfserving":
        cfg.grpc_requests = [tfserving_request(opts.model_name, opts.signature_name, opts.input_name, b)
                             for b in payload.batches()]
    CONFIG = cfg


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    worker = isinstance(environment.runner, WorkerRunner)
    if opts.payload or not worker:
        _configure(environment)  # fail fast on a bad payload, token file or option
    else:  # a worker started without our options gets them from the master with its first spawn message
        environment.events.test_start.add_listener(lambda **_: CONFIG is None and _configure(environment))
    environment.events.request.add_listener(_on_request)
    if worker:
        _register_worker(environment)
    elif opts.dc_plan:
        # the controller takes over once locust's own headless start (of 0 users) has completed
        started = gevent.event.Event()
        environment.events.spawning_complete.add_listener(lambda **_: started.set())
        gevent.spawn(_controller_main, environment, opts.dc_plan, started)


# ------------------------------------------------------------------ the recorder
class PhaseBuf:
    __slots__ = ("phase", "lat", "unc", "late", "errors", "scheduled", "unfinished", "cpu0", "t0", "cpu_seconds",
                 "wall_seconds")

    def __init__(self, phase: int) -> None:
        self.phase = phase
        self.lat = array("d")
        self.unc = array("d")
        self.late = array("d")
        self.errors: Counter[str] = Counter()
        self.scheduled = 0
        self.unfinished = 0
        self.cpu0 = _cpu_seconds()
        self.t0 = time.perf_counter()
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0

    def close(self) -> PhaseBuf:
        self.cpu_seconds = _cpu_seconds() - self.cpu0
        self.wall_seconds = time.perf_counter() - self.t0
        return self

    def pack(self, role: str) -> dict[str, Any]:
        return {"phase": self.phase, "lat": self.lat.tobytes(), "unc": self.unc.tobytes(),
                "late": self.late.tobytes(), "errors": dict(self.errors), "scheduled": self.scheduled,
                "unfinished": self.unfinished, "cpu": [role, os.getpid(), self.cpu_seconds, self.wall_seconds]}


_PROC = psutil.Process()


def _cpu_seconds() -> float:
    t = _PROC.cpu_times()
    return t.user + t.system


class Recorder:
    def __init__(self) -> None:
        self.phase: PhaseBuf | None = None  # closed loop: where completed requests go (None = not recording)
        self.done: dict[int, PhaseBuf] = {}

    def begin(self, phase: int) -> None:
        self.phase = PhaseBuf(phase)

    def end(self) -> PhaseBuf | None:
        buf, self.phase = self.phase, None
        if buf is not None:
            self.done[buf.phase] = buf.close()
        return buf


REC = Recorder()


def _on_request(request_type: str, name: str, response_time: float, response_length: int,
                exception: BaseException | None = None, context: dict | None = None, response: Any = None,
                **_: Any) -> None:
    dc = context.get("dc") if context else None
    if dc is None:  # closed loop: completed requests belong to the phase open now
        buf = REC.phase
        if buf is None:
            return
        if exception is None:
            buf.lat.append(response_time)
        else:
            buf.errors[error_kind(exception, response)] += 1
        return
    buf, t_sched, t_send = dc  # open loop: the request belongs to the phase of its scheduled send
    if buf is None:
        return
    if exception is None:
        buf.lat.append((t_send - t_sched) * 1000.0 + response_time)
        buf.unc.append(response_time)
    else:
        buf.errors[error_kind(exception, response)] += 1


# ------------------------------------------------------------------ open loop (any process)
def run_open_slice(environment: Any, spec: dict[str, Any], index: int, count: int) -> PhaseBuf:
    """Send this process's slice (every `count`-th arrival from `index`) of one open-loop point's schedule,
    independent of responses; returns the window's buffer once every request ended or the drain expired.

    The schedule is kept by a native thread sleeping with the OS's (microsecond) timer: the gevent loop's
    timers have 1 ms granularity, which alone would make sends up to 1 ms late. At each scheduled time
    the thread hands a dispatch callback to the event loop, which spawns the request's greenlet; the
    greenlet records its lateness (dispatch - scheduled), waits for a free connection (the server's
    backlog, not lateness), then sends.
    """
    from gevent import monkey

    real_sleep = monkey.get_original("time", "sleep")
    start_thread = monkey.get_original("_thread", "start_new_thread")
    cfg = config()
    connections = int(spec["connections"])
    sender = cfg.make_sender(environment, concurrency=connections)
    slots = gevent.lock.BoundedSemaphore(connections)
    group = gevent.pool.Group()
    warm, duration = float(spec["warmup"]), float(spec["duration"])
    offsets = poisson_offsets(float(spec["rate"]), warm + duration, int(spec["seed"]))[index::count]
    buf = PhaseBuf(int(spec["phase"]))
    loop = gevent.get_hub().loop
    finished = gevent.event.Event()
    failure: list[BaseException] = []

    def fire(target: PhaseBuf | None, t_sched: float) -> None:
        if target is not None:
            target.late.append((time.perf_counter() - t_sched) * 1000.0)
        with slots:  # a free connection / stream; waiting here is the server's backlog, not lateness
            sender.send(context={"dc": (target, t_sched, time.perf_counter())})

    def dispatch(off: float, t_sched: float) -> None:  # runs in the event loop: must not block
        target = None
        if off >= warm:
            if buf.scheduled == 0:  # the window's CPU and wall time start at its first scheduled send
                buf.cpu0, buf.t0 = _cpu_seconds(), t0 + warm
            target = buf
            buf.scheduled += 1
        group.spawn(fire, target, t_sched)

    def keep_schedule() -> None:  # native thread
        try:
            for off in offsets:
                t_sched = t0 + off
                delay = t_sched - time.perf_counter()
                if delay > 0:
                    real_sleep(delay)
                loop.run_callback_threadsafe(dispatch, off, t_sched)
        except BaseException as exc:  # handed to the greenlet below, which raises it
            failure.append(exc)
        finally:
            loop.run_callback_threadsafe(finished.set)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # let the scheduler thread take the GIL promptly at its send times
    try:
        t0 = time.perf_counter() + 0.05
        start_thread(keep_schedule, ())
        if not finished.wait(timeout=warm + duration + 30):
            raise TimeoutError("the open-loop scheduler thread did not finish its schedule")
        if failure:
            raise failure[0]
        gevent.sleep(max(0.0, t0 + warm + duration - time.perf_counter()))
        buf.close()  # CPU and wall of the sending window; requests finishing in the drain still count
        group.join(timeout=float(spec["drain"]))
    finally:
        sys.setswitchinterval(previous)
    buf.unfinished = len(group)
    if buf.unfinished:
        buf.errors["unfinished"] += buf.unfinished
        group.kill(block=True, timeout=5)
    return buf


# ------------------------------------------------------------------ worker side of distributed runs
def _register_worker(environment: Any) -> None:
    runner = environment.runner

    def on_phase(msg: Any, **_: Any) -> None:
        phase = msg.data["phase"]
        if phase is None:
            REC.end()
        else:
            REC.begin(phase)

    def on_collect(msg: Any, **_: Any) -> None:
        buf = REC.done.pop(msg.data["phase"], None) or PhaseBuf(msg.data["phase"]).close()
        runner.send_message("dc_samples", {"worker": runner.client_id, **buf.pack("worker")})

    def on_open(msg: Any, **_: Any) -> None:
        spec = msg.data

        def work() -> None:
            buf = run_open_slice(environment, spec, int(spec["index_of"][runner.client_id]), int(spec["count"]))
            runner.send_message("dc_samples", {"worker": runner.client_id, **buf.pack("worker")})

        gevent.spawn(work)

    runner.register_message("dc_phase", on_phase)
    runner.register_message("dc_collect", on_collect)
    runner.register_message("dc_open", on_open)


# ------------------------------------------------------------------ the controller (local or master)
class Controller:
    def __init__(self, environment: Any, plan: Any) -> None:
        self.env = environment
        self.runner = environment.runner
        self.plan = plan
        self.distributed = isinstance(self.runner, MasterRunner)
        self.received: dict[int, list[dict]] = {}
        if self.distributed:
            self.runner.register_message("dc_samples", self._on_samples)

    def _on_samples(self, msg: Any, **_: Any) -> None:
        self.received.setdefault(int(msg.data["phase"]), []).append(msg.data)

    # --- helpers
    def done_count(self) -> int:
        """Completed requests (successes and errors): a point of errors ends as fast as one of answers."""
        return self.runner.stats.total.num_requests

    def wait_until(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not cond():
            if time.perf_counter() > deadline:
                return False
            gevent.sleep(0.05)
        return True

    def workers(self) -> list[str]:
        return [c.id for c in self.runner.clients.all]

    def phase(self, phase: int | None) -> PhaseBuf | None:
        """Open window `phase` (None: close the open one and return this process's buffer of it)."""
        if self.distributed:
            self.runner.send_message("dc_phase", {"phase": phase})
        if phase is None:
            buf = REC.end()
            if buf is not None:
                REC.done.pop(buf.phase, None)
            return buf
        REC.begin(phase)
        return None

    def gather(self, phase: int, local: PhaseBuf | None, timeout: float) -> list[dict]:
        """Packed buffers of `phase` from this process and (distributed) every worker."""
        role = "master" if self.distributed else "local"
        parts = [local.pack(role)] if local is not None else []
        if self.distributed:
            n = len(self.workers())
            if not self.wait_until(lambda: len(self.received.get(phase, [])) >= n, timeout):
                raise TimeoutError(f"only {len(self.received.get(phase, []))} of {n} workers sent their samples "
                                   f"of point {phase} within {timeout:.0f} s")
            parts += self.received.pop(phase)
        return parts

    # --- closed loop
    def run_closed(self, out: list[dict]) -> str:
        from loadtests.rules import StepFigure, sweep_stop_reason

        plan, w = self.plan, self.plan.window
        history: list[StepFigure] = []
        for k, users in enumerate(int(u) for u in plan.steps):
            self.runner.start(users, spawn_rate=min(100, users * 10))
            if not self.wait_until(lambda: self.runner.user_count >= users, w.max_seconds):
                raise TimeoutError(f"locust did not spawn {users} users within {w.max_seconds:g} s")
            c0, t0 = self.done_count(), time.perf_counter()
            warmed = self.wait_until(lambda: self.done_count() - c0 >= w.warmup_samples
                                     and time.perf_counter() - t0 >= w.warmup_seconds, w.max_seconds)
            warm_count = self.done_count() - c0
            self.phase(k)
            c1, t1 = self.done_count(), time.perf_counter()
            complete = self.wait_until(lambda: time.perf_counter() - t1 >= w.min_seconds
                                       and self.done_count() - c1 >= w.min_samples, w.max_seconds)
            local = self.phase(None)
            if self.distributed:
                self.runner.send_message("dc_collect", {"phase": k})
            parts = self.gather(k, local, timeout=30)
            incomplete = None
            if not warmed:
                incomplete = f"warm-up did not reach {w.warmup_samples} completed requests in {w.max_seconds:g} s"
            elif not complete:
                incomplete = f"window did not reach {w.min_samples} completed requests in {w.max_seconds:g} s"
            point = {"mode": "closed", "users": users, "rate": None, "warmup_count": warm_count,
                     "incomplete": incomplete, "parts": parts}
            out.append(point)
            lat = [x for p in parts for x in array("d", p["lat"])]
            window = max(p["cpu"][3] for p in parts)
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None
            history.append(StepFigure(users=users, throughput=len(lat) / window if window else 0.0, p99_ms=p99))
            print(f"dc: closed {users} users: {history[-1].throughput:.0f} req/s p99~{p99} ms", flush=True)
            if plan.stop_rule:
                reason = sweep_stop_reason(history, plan.plateau_gain, plan.slo_p99_ms)
                if reason:
                    return reason
        return f"reached the last step ({int(plan.steps[-1])} users)"

    # --- open loop
    def run_open(self, out: list[dict]) -> str:
        plan, w = self.plan, self.plan.window
        for k, rate in enumerate(plan.steps):
            warm = max(w.warmup_seconds, w.warmup_samples / rate)
            duration = min(max(w.min_seconds, 1.05 * w.min_samples / rate), w.max_seconds)
            incomplete = None
            if rate * duration < w.min_samples:
                incomplete = (f"{rate:.0f} req/s over the {w.max_seconds:g} s limit schedules fewer than "
                              f"{w.min_samples} requests")
            spec = {"phase": k, "rate": rate, "seed": plan.seed + k, "warmup": warm, "duration": duration,
                    "drain": plan.drain_seconds, "connections": plan.connections}
            if self.distributed:
                ids = sorted(self.workers())
                spec.update(index_of={cid: i for i, cid in enumerate(ids)}, count=len(ids))
                self.runner.send_message("dc_open", spec)
                parts = self.gather(k, None, timeout=warm + duration + plan.drain_seconds + 30)
            else:
                parts = [run_open_slice(self.env, spec, 0, 1).pack("local")]
            out.append({"mode": "open", "users": None, "rate": rate, "warmup_count": 0, "incomplete": incomplete,
                        "parts": parts})
            print(f"dc: open {rate:.0f} req/s done", flush=True)
        return f"measured {len(plan.steps)} open-loop rate(s)"


def _unpack(point: dict) -> dict[str, Any]:
    parts = point["parts"]
    errors: Counter[str] = Counter()
    for p in parts:
        errors.update(p["errors"])
    window = max(p["cpu"][3] for p in parts) if parts else 0.0
    return {
        "mode": point["mode"], "users": point["users"], "rate": point["rate"], "window_seconds": window,
        "latency_ms": [x for p in parts for x in array("d", p["lat"])],
        "uncorrected_ms": [x for p in parts for x in array("d", p["unc"])],
        "lateness_ms": [x for p in parts for x in array("d", p["late"])],
        "errors": dict(errors), "warmup_count": point["warmup_count"],
        "scheduled": sum(p["scheduled"] for p in parts), "unfinished": sum(p["unfinished"] for p in parts),
        "cpu": [{"role": r, "pid": pid, "cpu_seconds": c, "wall_seconds": wall} for r, pid, c, wall in
                (p["cpu"] for p in parts)],
        "window_incomplete": point["incomplete"],
    }


def _controller_main(environment: Any, plan_path: str, started: gevent.event.Event) -> None:
    from core.results import load, to_json_data
    from loadtests.plan import Plan

    runner = environment.runner
    plan = load(Plan, plan_path)
    out_path = environment.parsed_options.dc_out or plan.out
    points: list[dict] = []
    error, stop_reason = None, ""
    try:
        controller = Controller(environment, plan)
        if not started.wait(timeout=90):
            raise TimeoutError("locust's headless start did not complete within 90 s (workers missing?)")
        if plan.mode == "open":  # no users: the scheduler greenlets send
            stop_reason = controller.run_open(points)
        else:
            stop_reason = controller.run_closed(points)
    except BaseException as exc:  # kept in the raw run: the orchestrator reports it with the points so far
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        print(f"dc: controller failed: {error}", flush=True)
    try:
        raw = {"plan": to_json_data(plan), "points": [_unpack(p) for p in points], "stop_reason": stop_reason,
               "workers": len(controller.workers()) if not error and controller.distributed else 0,
               "locust_version": locust.__version__, "error": error}
        tmp = out_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(raw, fh)
        os.replace(tmp, out_path)
    finally:
        runner.quit()


# ------------------------------------------------------------------ user classes (one protocol per locustfile)
class _SenderUser(locust.User):
    abstract = True
    sender_kind = "rest"

    def on_start(self) -> None:
        self.sender = config().make_sender(self.environment)

    @locust.task
    def predict(self) -> None:
        self.sender.send()


class TorchServeGrpcUser(_SenderUser):
    """Closed-loop user calling TorchServe's gRPC inference API (one channel per user)."""
    sender_kind = "grpc-torchserve"
    abstract = False


class TfServingGrpcUser(_SenderUser):
    """Closed-loop user calling TF Serving's PredictionService.Predict (one channel per user)."""
    sender_kind = "grpc-tfserving"
    abstract = False


class RestUser(locust.FastHttpUser):
    """Closed-loop user POSTing pre-serialized {"instances": ...} bodies (TF Serving or TorchServe REST)."""
    sender_kind = "rest"
    abstract = False

    def on_start(self) -> None:
        self.sender = config().make_sender(self.environment, session=self.client)

    @locust.task
    def predict(self) -> None:
        self.sender.send()
