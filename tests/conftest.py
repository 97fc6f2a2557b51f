"""Shared fixtures. Integration tests talk only to 127.0.0.1."""
from __future__ import annotations

import socket

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """Whatever the session started is stopped at its end, on every outcome: servers started in this
    process (fixtures), and the process groups and containers of CLIs the tests ran that died without
    stopping them (a test that SIGKILLs its CLI on a timeout). If pytest itself is killed, the ownership
    watchdog stops what this process started."""
    yield
    from core import ownership, proc
    from serving.launchers.docker import sweep_orphan_containers

    proc.stop_all()
    left = [f"deploy-compare {ownership.describe(o)} still running" for o in _stop_commands_still_running()]
    left += ownership.sweep_orphans() + sweep_orphan_containers()
    if left:
        print("\nstopped at the end of the test session (left by a test's CLI):\n  " + "\n  ".join(left))


@pytest.fixture(autouse=True)
def no_stop_signal_carried_over():
    """A test that signals this process must leave no stop behind: the next in-process pipeline would
    otherwise turn its own failure into an interrupt (`proc.received_stop()`) and end the session."""
    yield
    from core import proc

    stale = proc.received_stop()
    proc.reset_stop()
    assert stale is None, f"the test left a received stop signal behind ({stale}); call proc.reset_stop()"


def _stop_commands_still_running(timeout: float = 30.0) -> list:
    """Commands a failing test started and left running: SIGTERM (they stop their servers), then SIGKILL
    (their watchdogs stop what they started). Returns their records."""
    import os
    import signal
    import time

    import psutil

    from core import ownership

    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    running = [o for o in ownership.live_owners() if o.pid in ours]
    for owner in running:
        os.kill(owner.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(ownership.owner_alive(o) for o in running):
        time.sleep(0.1)
    for owner in running:
        if ownership.owner_alive(owner):
            os.kill(owner.pid, signal.SIGKILL)
    return running


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def spine_run(tmp_path_factory):
    """A real run folder with the `mlp` and `cnn` twins trained briefly, exported to every format and
    parity-checked: the shared starting point of floor, serving, load and report tests (built once)."""
    from dataclasses import replace

    from core.config import QUICK, RunConfig, TrainSettings
    from core.rundir import RunDir
    from deploy_compare.pipeline import RunContext, run_pipeline

    profile = replace(QUICK, name="test", train=TrainSettings(twins=("mlp", "cnn"), epochs=2))
    root = tmp_path_factory.mktemp("spine")
    config = RunConfig(profile=profile, run_id="spine", results_root=root, stages=("train", "export", "parity"))
    run_dir = RunDir(config.run_dir).create()
    run_pipeline(RunContext(config=config, run_dir=run_dir))
    return run_dir


@pytest.fixture(scope="session")
def torchserve_mlp(spine_run):
    """Real TorchServe (native, free 127.0.0.1 ports, token auth on) serving the `spine_run` mlp
    TorchScript model; yields the server: `.endpoints()` gives its REST and gRPC Endpoints
    (headers hold the inference token). Stopped at the end of the session."""
    from serving.testing import running_torchserve

    with running_torchserve(spine_run, twins=("mlp",), formats=("torchscript",)) as server:
        yield server
