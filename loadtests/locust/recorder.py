"""The recorder: a `request` event listener appending each request's perf_counter time (ms) to the
buffer of its window; errors counted by kind. Cheap enough to keep >= 8,000 req/s per core.

Closed loop: a completed request belongs to the window open now (`RECORDER.phase`). Open loop: it
belongs to the window of its *scheduled* send, carried in the request's context as
`{"dc": (buffer, t_scheduled, t_sent)}`; its latency counts from the scheduled send.
"""
from __future__ import annotations

import os
import time
from array import array
from collections import Counter
from typing import Any

import psutil

from deploy_compare.loadtests.plan import ProcessCpu, RawPart
from deploy_compare.loadtests.senders import error_kind

_PROC = psutil.Process()


def cpu_seconds() -> float:
    t = _PROC.cpu_times()
    return t.user + t.system


class PhaseBuf:
    """One window's samples in this process (arrays: appending must cost next to nothing)."""

    __slots__ = ("phase", "lat", "unc", "late", "errors", "scheduled", "unfinished", "cpu0", "t0", "cpu_seconds",
                 "wall_seconds",
                 "start_unix", "end_unix", "scheduling")

    def __init__(self, phase: int) -> None:
        self.phase = phase
        self.lat = array("d")
        self.unc = array("d")
        self.late = array("d")
        self.errors: Counter[str] = Counter()
        self.scheduled = 0
        self.unfinished = 0
        self.cpu0 = cpu_seconds()
        self.t0 = time.perf_counter()
        # wall-clock bounds of the window: the server's metrics are scraped on the wall clock, so the
        # report can pick the scrapes that fall inside this point's window
        self.start_unix = time.time()
        self.end_unix = self.start_unix
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0
        self.scheduling = ""  # open loop: what `deploy_compare.core.realtime` put in effect for the sending threads

    def close(self) -> PhaseBuf:
        self.cpu_seconds = cpu_seconds() - self.cpu0
        self.wall_seconds = time.perf_counter() - self.t0
        self.end_unix = time.time()
        return self

    def part(self, role: str) -> RawPart:
        return RawPart(cpu=ProcessCpu(role=role, pid=os.getpid(), cpu_seconds=self.cpu_seconds,
                                      wall_seconds=self.wall_seconds, scheduling=self.scheduling),
                       latency_ms=self.lat.tolist(), uncorrected_ms=self.unc.tolist(), lateness_ms=self.late.tolist(),
                       errors=dict(self.errors), scheduled=self.scheduled, unfinished=self.unfinished,
                       start_unix=self.start_unix, end_unix=self.end_unix)


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

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                   exception: BaseException | None = None, context: dict | None = None, response: Any = None,
                   **_: Any) -> None:
        dc = context.get("dc") if context else None
        if dc is None:  # closed loop: completed requests belong to the phase open now
            buf = self.phase
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


RECORDER = Recorder()  # one per locust process: the request event has no other place to find it
