"""Real servers for tests (and for other areas' tests, e.g. the load tests): start TorchServe natively
on free loopback ports for a run folder, wait until ready, yield it with its endpoints, stop it.

    with serving.testing.running_torchserve(spine_run, twins=("mlp",), formats=("torchscript",)) as ts:
        ts.endpoints()   # REST + gRPC Endpoints (headers hold the inference token)

`tests/conftest.py` wraps it as the session fixture `torchserve_mlp`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from core.config import ServeSettings
from core.rundir import RunDir
from serving.stacks import import_servers, plan_server


@contextlib.contextmanager
def running_torchserve(run_dir: RunDir, twins: tuple[str, ...] = ("mlp",), formats: tuple[str, ...] = ("torchscript",),
                       settings: ServeSettings | None = None, ready_timeout: float = 120.0,
                       launcher: str = "native") -> Iterator:
    import_servers()
    settings = replace(settings or ServeSettings(), launcher=launcher, twins=tuple(twins))
    planned = plan_server("torchserve", run_dir, settings, list(formats))
    if planned.server is None:
        raise RuntimeError(f"TorchServe cannot run: {planned.not_run}")
    server = planned.server
    try:
        server.start()
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()
