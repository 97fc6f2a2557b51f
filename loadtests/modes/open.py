"""Open loop: requests arrive on a seeded Poisson schedule at a target rate, whether or not earlier
ones finished. Latency = completion - SCHEDULED send (coordinated-omission corrected); the uncorrected
figure (completion - actual send, once a connection is free) and the send lateness are kept beside it.
Target rates default to `open_loop_fractions` of the saturation throughput of the closed-loop sweep."""
from __future__ import annotations

from loadtests.modes.base import LOAD_MODES, LoadJob, LoadMode
from loadtests.plan import Plan


def target_rates(job: LoadJob) -> list[float]:
    if job.rates:
        return [float(r) for r in job.rates]
    if not job.saturation_rps:
        raise ValueError("open loop needs target rates (--rate) or a measured saturation throughput")
    return [round(f * job.saturation_rps, 1) for f in job.settings.open_loop_fractions]


@LOAD_MODES.add
class OpenLoop(LoadMode):
    name = "open"

    def plan(self, job: LoadJob) -> Plan:
        rates = target_rates(job)
        if any(r <= 0 for r in rates):
            raise ValueError(f"target rates must be > 0 req/s, got {rates}")
        s = job.settings
        return Plan(mode="open", steps=rates, window=s.window, out="", seed=s.seed, connections=job.connections)
