"""Shared fixtures. Integration tests talk only to 127.0.0.1."""
from __future__ import annotations

import socket
from collections import Counter

import pytest

# A skip's reason starts with one of these when CI may accept it (`--only-allowed-skips`): a test the reader
# turns on by hand (its reason says how), a cross-check that measured its reference too scattered to judge, or a
# test of a kernel/hardware feature this machine does not have (no package installs it: e.g. a VM whose kernel
# exposes no cpuidle states). A missing *tool* is never allowed: CI installs tools.
OPT_IN = "opt-in"
TOO_NOISY = "too noisy to judge"
NO_SUCH_HARDWARE = "this machine's kernel has no"
ALLOWED_SKIPS = (OPT_IN, TOO_NOISY, NO_SUCH_HARDWARE)


def pytest_addoption(parser):
    parser.addoption("--only-allowed-skips", action="store_true",
                     help=f"fail the session when a test skips for a reason not starting with one of {ALLOWED_SKIPS} "
                          "(CI: .ci/run, where every tool is installed, so a missing one must not pass as a skip)")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_sessionfinish(session, exitstatus):
    """Count the skips by reason (printed at the end); with --only-allowed-skips a skip outside ALLOWED_SKIPS
    fails the session."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    reasons = Counter(_skip_reason(r) for r in reporter.stats.get("skipped", []))
    refused = {r: n for r, n in reasons.items() if not r.startswith(ALLOWED_SKIPS)}
    session.config.stash[_SKIPS] = (reasons, refused)
    if refused and session.config.getoption("only_allowed_skips") and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_SKIPS = pytest.StashKey[tuple]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reasons, refused = config.stash.get(_SKIPS, (Counter(), {}))
    if not reasons:
        return
    strict = config.getoption("only_allowed_skips")
    terminalreporter.section(f"skips by reason ({sum(reasons.values())})")
    for reason, n in reasons.most_common():
        verdict = "allowed" if reason not in refused else "NOT ALLOWED" if strict else "not allowed in CI"
        terminalreporter.line(f"{n:4d}  [{verdict}] {reason}")
    if refused and strict:
        terminalreporter.line(f"--only-allowed-skips: {sum(refused.values())} skip(s) for a reason outside "
                              f"{ALLOWED_SKIPS}: the session fails (install what they name, or fix the test)",
                              red=True)


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
    from deploy_compare.core import ownership, proc
    from deploy_compare.serving.launchers.docker import sweep_orphan_containers

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
    from deploy_compare.core import proc

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

    from deploy_compare.core import ownership

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

    from deploy_compare.app.pipeline import RunContext, run_pipeline
    from deploy_compare.core.config import CONVERTERS, QUICK, ExportSettings, RunConfig, TrainSettings
    from deploy_compare.core.rundir import RunDir

    # no AOTInductor compiles (tens of seconds each: `pt2_run` compiles the mlp once) and no converter venvs
    profile = replace(QUICK, name="test", train=TrainSettings(twins=("mlp", "cnn"), epochs=2),
                      export=ExportSettings(exclude=("*/aoti", *CONVERTERS)))
    root = tmp_path_factory.mktemp("spine")
    config = RunConfig(profile=profile, run_id="spine", results_root=root, stages=("train", "export", "parity"))
    run_dir = RunDir(config.run_dir).create()
    run_pipeline(RunContext(config=config, run_dir=run_dir))
    return run_dir


@pytest.fixture(scope="session")
def pt2_run(spine_run, tmp_path_factory):
    """A run folder holding `spine_run`'s trained mlp exported as a torch.export program and an AOTInductor
    package (one compile per session, ~1 min here), with its manifest and parity.json: built once."""
    import shutil

    from deploy_compare.core import results
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models import parity
    from deploy_compare.models.exporters.base import EXPORTERS, Manifest, load_exporters
    from deploy_compare.models.exporters.stage import jobs_for, run_exporter
    from deploy_compare.models.training import KERAS_FILE, TORCH_FILE

    run_dir = RunDir(tmp_path_factory.mktemp("pt2") / "pt2").create()
    shutil.copytree(spine_run.data, run_dir.data, dirs_exist_ok=True)
    run_dir.twin_dir("mlp").mkdir(parents=True)
    for name in (KERAS_FILE, TORCH_FILE):  # the trained twin only, not spine_run's artifacts
        shutil.copy2(spine_run.twin_dir("mlp") / name, run_dir.twin_dir("mlp") / name)
    load_exporters()
    manifest = Manifest(run_id="pt2")
    job = jobs_for(run_dir, "mlp")["pytorch"]
    for name in ("torch-export", "aoti"):
        run_exporter(EXPORTERS.get(name)(), job, manifest)
    results.save(manifest, run_dir.manifest)
    results.save(parity.check(run_dir, manifest), run_dir.parity)
    return run_dir


@pytest.fixture(scope="session")
def torchserve_mlp(spine_run):
    """Real TorchServe (native, free 127.0.0.1 ports, token auth on) serving the `spine_run` mlp
    TorchScript model; yields the server: `.endpoints()` gives its REST and gRPC Endpoints
    (headers hold the inference token). Stopped at the end of the session."""
    from tests.servers import running_torchserve

    with running_torchserve(spine_run, twins=("mlp",), formats=("torchscript",)) as server:
        yield server
