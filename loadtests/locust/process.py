"""Wires the harness into a locust process at init: this process's request configuration, the
recorder on locust's `request` event, a worker's message handlers, or (with `--dc-plan`) the controller.
Without `--dc-plan` the locustfiles behave like any locustfile (users, web UI, locust's own stats)."""
from __future__ import annotations

from typing import Any

import gevent
import gevent.event
import locust.runners
from locust import events
from locust.runners import WorkerRunner

from deploy_compare.loadtests.locust import options
from deploy_compare.loadtests.locust.recorder import RECORDER

# Workers report locust's stats to the master every 3 s by default; the controller uses those counts
# to close windows, so report more often.
locust.runners.WORKER_REPORT_INTERVAL = 0.5


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    worker = isinstance(environment.runner, WorkerRunner)
    if opts.payload or opts.dc_plan or not worker:
        options.configure(environment)  # fail fast on a bad payload, token file or option
    else:  # a worker started without our options gets them from the master with its first spawn message
        environment.events.test_start.add_listener(
            lambda **_: options.configured() or options.configure(environment))
    environment.events.request.add_listener(RECORDER.on_request)
    if worker:
        from deploy_compare.loadtests.locust.worker import register_worker

        register_worker(environment)
    elif opts.dc_plan:
        from deploy_compare.loadtests.locust.controller import controller_main

        # the controller takes over once locust's own headless start (of 0 users) has completed
        started = gevent.event.Event()
        environment.events.spawning_complete.add_listener(lambda **_: started.set())
        gevent.spawn(controller_main, environment, opts.dc_plan, started)
