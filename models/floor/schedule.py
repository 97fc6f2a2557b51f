"""Running the planned groups: each in a fresh process (`deploy_compare.core.proc.run_isolated`, target
`deploy_compare.models.floor.measure:measure_group`), threads = 1 groups up to `parallel_processes` at a time, each
pinned to its own core. Finished points stream back through a JSONL progress file, so a process that dies
keeps what it measured; the points it did not reach become failed rows. On an interrupt only the measuring
processes this scheduler started are stopped (other tracked processes of the caller keep running).
"""
from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from deploy_compare.core import results
from deploy_compare.core.config import FloorSettings
from deploy_compare.core.proc import IsolatedError, ManagedProcess, live_processes, run_isolated
from deploy_compare.core.rundir import RunDir
from deploy_compare.models.floor.plan import Group
from deploy_compare.models.floor.schema import THREAD_VARS, FloorPoint, MeasureRequest, ProcessRecord
from deploy_compare.models.parity import ParityTolerance

MEASURE_TARGET = "deploy_compare.models.floor.measure:measure_group"
POLL_S = 0.2

OnPoint = Callable[[FloorPoint], None] | None
Outcome = tuple[list[FloorPoint], ProcessRecord]


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def core_slots(settings: FloorSettings) -> list[int]:
    """Cores a threads = 1 process may be pinned to: `pin_cpu` first, then the other allowed cores."""
    allowed = sorted(os.sched_getaffinity(0))
    first = settings.pin_cpu if settings.pin_cpu in allowed else allowed[0]
    return [first] + [c for c in allowed if c != first]


class Scheduler:
    """Runs groups; remembers which tracked processes existed before it, so that it stops only its own."""

    def __init__(self, run_dir: RunDir, settings: FloorSettings, tolerance: ParityTolerance,
                 on_point: OnPoint = None) -> None:
        self.run_dir, self.settings, self.tolerance, self.on_point = run_dir, settings, tolerance, on_point
        self._before = live_processes()

    def started(self) -> list[ManagedProcess]:
        return [p for p in live_processes() - self._before if p.name == MEASURE_TARGET]

    def stop_started(self) -> None:
        for proc in self.started():
            proc.stop()

    def run_group(self, group: Group, cpus: set[int] | None, concurrent: int = 1) -> Outcome:
        """Measure a group in a fresh process; points the process did not finish become failed rows."""
        safe = group.name.replace("/", "_").replace(" ", "_")
        progress = self.run_dir.logs / "floor" / f"{safe}-t{group.threads}-r{group.repeat}.jsonl"
        progress.parent.mkdir(parents=True, exist_ok=True)
        progress.unlink(missing_ok=True)
        s = self.settings
        request = MeasureRequest(run_dir=str(self.run_dir.path), group=group.name, threads=group.threads,
                                 repeat=group.repeat, points=list(group.points), window=s.window,
                                 throughput_window=s.throughput_window, batch_sizes=list(s.batch_sizes),
                                 tolerance=self.tolerance, max_raw_samples=s.max_raw_samples, progress=str(progress),
                                 rounds=s.rounds)
        done: list[FloorPoint] = []
        t0 = time.perf_counter()

        def poll() -> None:
            text = progress.read_text(encoding="utf-8") if progress.exists() else ""
            for line in text.split("\n")[:-1][len(done):]:  # complete lines only: the child may be mid-write
                done.append(results.from_json_data(FloorPoint, json.loads(line)))
                if self.on_point:
                    self.on_point(done[-1])

        error: str | None = None
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(run_isolated, MEASURE_TARGET, results.to_json_data(request),
                                 timeout=s.process_timeout_s, log_path=progress.with_suffix(".log"), cpus=cpus,
                                 env=thread_env(group.threads))
            try:
                while not future.done():
                    time.sleep(POLL_S)
                    poll()
            except BaseException:  # Ctrl-C / SIGTERM: stop the measuring process(es) now, not at their timeout
                self.stop_started()
                raise
            try:
                future.result()
            except IsolatedError as exc:
                error = f"{exc}\n{exc.child_traceback}".strip()
        poll()
        record = ProcessRecord(group=group.name, threads=group.threads, repeat=group.repeat, points=len(group.points),
                               pinned_cpus=sorted(cpus) if cpus else None, seconds=time.perf_counter() - t0,
                               error=error, concurrent=concurrent)
        for spec in group.points[len(done):]:
            failed = FloorPoint(spec=spec, threads=group.threads, repeat=group.repeat, group=group.name,
                                group_size=len(group.points), position_in_group=len(done), ok=False,
                                error=f"the measuring process ended before this point: {error or 'no result'}")
            done.append(failed)
            if self.on_point:
                self.on_point(failed)
        return done, record

    def run(self, groups: list[Group]) -> list[Outcome]:
        """Every group; results in group order. Threads = 1 groups run up to `parallel_processes` at a time,
        each pinned to its own core (longest first); groups with more threads run alone, unpinned."""
        slots = core_slots(self.settings)[:max(1, self.settings.parallel_processes)]
        free: queue.Queue[int] = queue.Queue()
        for cpu in slots:
            free.put(cpu)

        def job(group: Group) -> Outcome:
            cpu = free.get()
            try:
                return self.run_group(group, {cpu}, concurrent=len(slots))
            finally:
                free.put(cpu)

        out: dict[int, Outcome] = {}
        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            order = sorted(range(len(groups)), key=lambda i: -groups[i].estimated_seconds())
            futures = {i: pool.submit(job, groups[i]) for i in order if groups[i].threads == 1}
            try:
                for i, future in futures.items():
                    out[i] = future.result()
            except BaseException:  # Ctrl-C: cancel what has not started, stop what runs
                pool.shutdown(wait=False, cancel_futures=True)
                self.stop_started()
                raise
        for i, group in enumerate(groups):
            if group.threads != 1:
                out[i] = self.run_group(group, None)
        return [out[i] for i in range(len(groups))]
