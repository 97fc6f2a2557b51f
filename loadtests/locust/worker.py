"""A locust worker's side of a distributed run: open/close windows when the master says, hand in its
part of a window, and drive its slice of a mode's step (e.g. every n-th arrival of an open-loop point)."""
from __future__ import annotations

from typing import Any

import gevent

from deploy_compare.loadtests.locust import messages
from deploy_compare.loadtests.locust.recorder import RECORDER, PhaseBuf


def register_worker(environment: Any) -> None:
    from deploy_compare.loadtests.modes import get_mode

    runner = environment.runner

    def on_phase(msg: Any, **_: Any) -> None:
        phase = msg.data["phase"]
        if phase is None:
            RECORDER.end()
        else:
            RECORDER.begin(phase)

    def on_collect(msg: Any, **_: Any) -> None:
        phase = int(msg.data["phase"])
        buf = RECORDER.done.pop(phase, None) or PhaseBuf(phase).close()
        runner.send_message(messages.PART, messages.part_message(runner.client_id, phase, buf.part("worker")))

    def on_step(msg: Any, **_: Any) -> None:
        data = msg.data
        mode = get_mode(data["mode"])

        def work() -> None:
            phase, part = mode.drive_slice(environment, data["step"], int(data["index_of"][runner.client_id]),
                                           int(data["count"]))
            runner.send_message(messages.PART, messages.part_message(runner.client_id, phase, part))

        gevent.spawn(work)

    runner.register_message(messages.PHASE, on_phase)
    runner.register_message(messages.COLLECT, on_collect)
    runner.register_message(messages.STEP, on_step)
