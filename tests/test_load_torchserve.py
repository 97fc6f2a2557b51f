"""Load tests against real TorchServe (the shared `torchserve_mlp` fixture) on 127.0.0.1."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deploy_compare.core.config import QUICK
from deploy_compare.core.stats import WindowPolicy
from deploy_compare.loadtests.stage import measure_endpoint, server_alive

pytestmark = pytest.mark.integration

SETTINGS = replace(QUICK.load, window=WindowPolicy(warmup_seconds=0.3, warmup_samples=10, min_seconds=1.0,
                                                   min_samples=100, max_seconds=10.0),
                   max_users=4, drain_seconds=5.0, server_warmup_seconds=0.0, one_user_seconds=0.0)


def _endpoint(server, protocol):
    return next(e for e in server.endpoints() if e.protocol == protocol)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_sweep_and_open_loop_on_torchserve(torchserve_mlp, spine_run, tmp_path, protocol):
    ep = _endpoint(torchserve_mlp, protocol)
    res = measure_endpoint(ep, SETTINGS, payload=str(spine_run.path), twin="mlp", log_dir=tmp_path)
    assert res.status == "ok", res.failure
    sweep = res.sweeps[0]
    users = [p.users for p in sweep.points]
    assert users == [1, 2, 4][:len(users)]
    assert sweep.stop_reason  # stopped by its rule or at the last step
    assert all(sum(p.errors.values()) == 0 for p in sweep.points), [p.errors for p in sweep.points]
    assert res.saturation_rps and res.saturation_rps > 50
    (point,) = res.open_points
    assert point.target_rate == pytest.approx(0.5 * res.saturation_rps, rel=0.01)
    assert point.count >= 100 and point.uncorrected_ms is not None
    # the token authorizes every request but is never part of the results
    assert ep.headers and res.endpoint["auth"] == "token"
    assert all(v.split()[-1] not in str(res) for v in ep.headers.values())
    print(f"\n{protocol}: saturation {res.saturation_rps:.0f} req/s; " + "; ".join(
        f"{p.load} {p.throughput_rps:.0f} req/s p99 {p.latency_ms.stats['p99']:.2f} ms cpu "
        f"{max(c.cpu_fraction for c in p.generator_cpu):.0%} valid={p.valid}" for p in sweep.points + [point])
        + f"; open uncorrected p99 {point.uncorrected_ms.stats['p99']:.2f} late {point.late_fraction:.1%} "
        f"{point.invalid_reasons}")


def test_bad_input_is_counted_as_errors_and_server_stays_healthy(torchserve_mlp, tmp_path):
    ep = _endpoint(torchserve_mlp, "rest")
    np.save(tmp_path / "wrong.npy", np.ones((8, 5), dtype=np.float32))  # mlp expects 64 features
    res = measure_endpoint(ep, SETTINGS, payload=str(tmp_path / "wrong.npy"), twin=None, log_dir=tmp_path,
                           users=[2], modes=("closed",))
    (point,) = res.sweeps[0].points
    assert set(point.errors) == {"http_400"} and point.error_flag and not point.valid and point.count == 0
    assert res.status == "ok"  # the endpoint is alive: its answers were errors, counted, not a crash
    assert server_alive(ep.server_pids)


def test_cli_loadtest_grpc_with_token_file(torchserve_mlp, spine_run, tmp_path):
    import subprocess
    import sys

    from deploy_compare.core.results import load
    from deploy_compare.loadtests.results import LoadTestResults

    ep = _endpoint(torchserve_mlp, "grpc")
    token = ep.headers["Authorization"].split()[-1]
    (tmp_path / "token").write_text(token)
    # in a child process: the CLI's exit path stops every process its interpreter started (this fixture too)
    cli = subprocess.run(
        [sys.executable, "-m", "deploy_compare.app.cli", "loadtest", "--grpc", ep.target, "--server", "torchserve",
         "--model-name", ep.served_name, "--payload", str(spine_run.path), "--twin", "mlp", "--layout", ep.layout,
         "--mode", "open", "--rate", "100", "--token-file", str(tmp_path / "token"), "--out", str(tmp_path / "out"),
         "--server-warmup", "0"],  # the CLI and the token are tested here, not the warm-up
        capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert token not in cli.stdout + cli.stderr
    saved = load(LoadTestResults, tmp_path / "out" / "loadtest.json")
    assert saved.endpoints[0].server_warmup is None  # --server-warmup 0: none
    (point,) = saved.endpoints[0].open_points
    assert point.target_rate == 100 and point.count > 0 and not point.errors
    assert token not in (tmp_path / "out" / "loadtest.json").read_text()
    assert all(token not in f.read_text() for f in (tmp_path / "out" / "logs").iterdir())
    assert server_alive(ep.server_pids)  # the shared fixture survives the CLI run
