"""Real-time scheduling for a latency-critical thread, best effort and reported.

On a shared machine the generator's core is not the generator's alone: here the VM's agent (PID 1,
nice -10) runs 2-6 ms of CPU about once a second, and with the server's core busy it runs on the
generator's. Under the default policy every open-loop send scheduled inside such a burst is late by
the rest of it. A SCHED_FIFO thread is not preempted by normal-policy work (the kernel's RT throttling,
95% of each second by default, still bounds it), so the burst waits instead of the send.

`realtime(priority)` switches the calling thread (and the threads it starts meanwhile, which inherit
the policy) to SCHED_FIFO for the block and back afterwards. It needs CAP_SYS_NICE or an RLIMIT_RTPRIO
of at least `priority`; without them the block runs under the normal policy. Either way it yields a
description of what was in effect, which the caller records next to its figures.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def _normal(reason: str) -> str:
    return f"normal (SCHED_OTHER): {reason}"


@contextlib.contextmanager
def realtime(priority: int) -> Iterator[str]:
    """SCHED_FIFO at `priority` (1-99) for the calling thread during the block; 0 = do not try."""
    if priority <= 0:
        yield _normal("real-time scheduling not requested")
        return
    if not hasattr(os, "sched_setscheduler"):
        yield _normal("this platform has no sched_setscheduler")
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        yield _normal(f"SCHED_FIFO {priority} refused ({exc.strerror or exc}; it needs CAP_SYS_NICE or "
                      f"`ulimit -r {priority}`)")
        return
    try:
        yield f"SCHED_FIFO {priority}"
    finally:
        os.sched_setscheduler(0, policy, param)
