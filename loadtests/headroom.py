"""Generator self-check: CPU placement, and the generator's headroom against the null endpoint.

The null server runs pinned to the server's core(s); locust runs pinned to the others, closed loop
with `headroom_users` users and sample recording on. GeneratorHeadroom = requests/s per core of generator CPU
(throughput / CPU fraction): what one generator core can send, to compare with the servers' saturation.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.config import LoadSettings
from core.kinds import LoadModeKind
from loadtests.launch import LOCUSTFILES, LocustTarget, free_port
from loadtests.modes import LoadJob, get_mode
from loadtests.nullserver import start_null_server
from loadtests.results import GeneratorHeadroom


def generator_cpus(server_cpus: list[int] | set[int]) -> set[int] | None:
    """The cores the server does not use (None: no disjoint core left, generator not pinned)."""
    available = os.sched_getaffinity(0)
    rest = available - set(server_cpus)
    return rest or None


def server_core_for_null() -> set[int]:
    """The null server takes the lowest core (as the real servers do: ServeSettings.pin_server_cpu = 0)."""
    available = sorted(os.sched_getaffinity(0))
    return {available[0]} if len(available) >= 2 else set(available)


def measure_headroom(settings: LoadSettings, payload: str, log_dir: Path, *, twin: str | None = None,
                     server_cpus: set[int] | None = None) -> GeneratorHeadroom:
    server_cpus = set(server_cpus) if server_cpus else server_core_for_null()
    gen = generator_cpus(server_cpus)
    port = free_port()
    server = start_null_server(port, Path(log_dir) / "nullserver.log", cpus=server_cpus)
    try:
        opts = ["--payload", str(payload)] + (["--twin", twin] if twin else [])
        target = LocustTarget(locustfile=LOCUSTFILES / "rest.py", host=f"http://127.0.0.1:{port}", options=opts)
        job = LoadJob(target=target, settings=settings, log_dir=Path(log_dir), name="headroom", cpus=gen,
                      users=[settings.headroom_users], stop_rule=False)
        outcome = get_mode(LoadModeKind.CLOSED).run(job)
    finally:
        server.stop(timeout=5)
    if outcome.error or not outcome.points:
        raise RuntimeError(f"generator headroom measurement failed: {outcome.error or 'no point measured'}")
    point = outcome.points[0]
    cpu = max((c.cpu_fraction for c in point.generator_cpu), default=0.0)
    note = ("generator CPU is expected near 100% here: this point measures the generator itself"
            if cpu > settings.generator_cpu_limit else
            "the generator did not saturate its core: the null server or the machine limited this figure")
    return GeneratorHeadroom(users=settings.headroom_users, throughput_rps=point.throughput_rps,
                             generator_cpu_fraction=cpu, rps_per_core=point.throughput_rps / cpu if cpu > 0 else 0.0,
                             generator_cpus=sorted(gen) if gen else [], server_cpus=sorted(server_cpus),
                             points=[point], note=note)
