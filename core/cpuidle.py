"""What idle CPUs do while a measurement runs, held and recorded.

Why: at low load a request's path wakes idle CPUs several times (generator -> server frontend -> worker ->
back). On a virtual machine an idle vCPU halts, which exits to the hypervisor, and waking it again costs
whatever the host's scheduler makes it cost that minute. Measured here (Firecracker guest, cpuidle driver
`haltpoll` with `guest_halt_poll_ns=0`, so every idle is a halt): a warm TorchServe, mlp-onnx REST, one
connection from wrk, 1-s windows, 18 windows each way, interleaved:
  idle CPUs halting: p50 0.607-0.727 ms (median 0.645), 1,152-1,582 req/s;
  idle CPUs polling: p50 0.562-0.635 ms (median 0.575), 1,472-1,720 req/s.
A tight CPU loop's time moved < 3% over the same minutes: the spread is the wake-ups, not the cores.

How: the kernel's PM QoS interface. While a process holds `/dev/cpu_dma_latency` open with a 0 in it, the
cpuidle governors pick only exit-latency-0 states, i.e. the POLL state (what tuned's latency-performance
profile does, and MLPerf submitters do by disabling C-states). The request ends when the file is closed,
so a killed process leaves nothing behind. It needs root (the device is 0600); without it, or without a
cpuidle driver that has a POLL state, nothing is changed and the record says why.

What it costs: idle CPUs spin while it is held (the load stage, or a `serve` session), which a shared host
bills as busy time. `--cpu-idle default` leaves the kernel's choice; either way the record is stored next
to the figures (`loadtest.json` -> `cpu_idle`), with the idle time each state took over the hold, so
"polled" is a measurement, not an assumption.
"""
from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deploy_compare.core.kinds import CpuIdle

QOS_DEVICE = Path("/dev/cpu_dma_latency")
SYS_CPU = Path("/sys/devices/system/cpu")


@dataclass
class CpuIdleRecord:
    policy: str  # asked for (deploy_compare.core.kinds.CpuIdle)
    held: bool  # a 0 us latency request was in effect for the whole hold
    driver: str  # cpuidle driver ("" when the kernel has none)
    governor: str
    note: str  # what was done, or why nothing was
    # idle time over the hold, seconds summed over CPUs, per idle state name (e.g. POLL, haltpoll idle)
    idle_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def polled_fraction(self) -> float | None:
        """Share of the hold's idle time spent in the POLL state (None: no idle time was recorded)."""
        total = sum(self.idle_seconds.values())
        return self.idle_seconds.get("POLL", 0.0) / total if total > 0 else None

    def summary(self) -> str:
        frac = self.polled_fraction
        share = f"; {frac:.1%} of idle time polled" if frac is not None else ""
        return f"CPU idle: {self.policy}, {'held' if self.held else 'not held'} ({self.note}){share}"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def idle_state_times(root: Path = SYS_CPU) -> dict[str, float]:
    """Idle time so far per state name, seconds summed over the CPUs (empty without cpuidle)."""
    out: dict[str, float] = {}
    for state in sorted(root.glob("cpu[0-9]*/cpuidle/state[0-9]*")):
        name, usec = _read(state / "name"), _read(state / "time")
        if name and usec.isdigit():
            out[name] = out.get(name, 0.0) + int(usec) / 1e6
    return out


@contextlib.contextmanager
def hold(policy: str, *, device: Path = QOS_DEVICE, root: Path = SYS_CPU) -> Iterator[CpuIdleRecord]:
    """Hold the idle policy for the body; the record's `idle_seconds` is filled when the body ends."""
    record = CpuIdleRecord(policy=CpuIdle(policy).value, held=False, driver=_read(root / "cpuidle/current_driver"),
                           governor=_read(root / "cpuidle/current_governor_ro") or _read(
                               root / "cpuidle/current_governor"), note="")
    fd = None
    before = idle_state_times(root)  # also which idle states there are
    if record.policy == CpuIdle.DEFAULT:
        record.note = "idle states as the kernel chooses them (--cpu-idle default)"
    elif "POLL" not in before:
        record.note = (f"no cpuidle POLL state under {root} (driver {record.driver or 'none'}): idle CPUs "
                       "halt as the kernel chooses; nothing to hold")
    else:
        try:
            fd = os.open(device, os.O_WRONLY)
            os.write(fd, struct.pack("i", 0))
        except OSError as exc:
            if fd is not None:
                os.close(fd)
                fd = None
            record.note = (f"could not hold {device} at 0 us ({exc.strerror or exc}): idle CPUs halt as the "
                           "kernel chooses; run as root to let them poll, or pass --cpu-idle default to say so")
        else:
            record.held = True
            record.note = f"{device} held at 0 us: idle CPUs poll instead of halting"
    try:
        yield record
    finally:
        after = idle_state_times(root)
        record.idle_seconds = {k: round(after[k] - before.get(k, 0.0), 3) for k in after}
        if fd is not None:
            os.close(fd)


def add_argument(parser, default: str | None = None) -> None:
    """`--cpu-idle poll|default` (run, serve, loadtest). `default` None: the profile's `LoadSettings.cpu_idle`
    (the load stages: poll); `serve` is open-ended and passes "default", so nothing spins unless asked."""
    parser.add_argument("--cpu-idle", default=default, choices=[c.value for c in CpuIdle],
                        help="what idle CPUs do while load is measured or served: poll (hold /dev/cpu_dma_latency "
                             "at 0, needs root; idle cores spin; recorded either way) or default (the kernel's "
                             f"choice); default: {default or 'poll'}")
