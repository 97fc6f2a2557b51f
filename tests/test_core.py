from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

from deploy_compare.core import proc, results, stats
from deploy_compare.core.config import PROFILES, RunConfig
from deploy_compare.core.registry import Registry
from deploy_compare.core.rundir import RunDir, RunDirExists
from tests.conftest import NO_SUCH_HARDWARE


def test_registry_lookup_and_errors():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    assert reg.get("a") == 1 and "a" in reg and reg.names() == ["a"]
    with pytest.raises(KeyError, match="unknown thing 'b'; registered: a"):
        reg.get("b")
    with pytest.raises(ValueError):
        reg.register("a")(2)


@pytest.mark.parametrize("name", list(PROFILES))
def test_run_config_round_trips_through_json(tmp_path, name):
    cfg = RunConfig(profile=PROFILES[name], run_id="r1", results_root=tmp_path)
    path = results.save(cfg, tmp_path / "config.json")
    assert results.load(RunConfig, path) == cfg


def test_run_id_is_validated(tmp_path):
    with pytest.raises(ValueError, match="run id"):
        RunConfig(profile=PROFILES["quick"], run_id="../escape", results_root=tmp_path)


def test_measurement_round_trip_and_wrong_type_fails(tmp_path):
    m = results.Measurement(name="lat", unit="ms", higher_is_better=False, samples=[1.0, 2.0],
                            stats=stats.summarize([1.0, 2.0]))
    assert results.from_json_data(results.Measurement, json.loads(json.dumps(results.to_json_data(m)))) == m
    with pytest.raises(Exception, match="samples"):
        results.from_json_data(results.Measurement, {**results.to_json_data(m), "samples": "x"})


def test_summarize_known_inputs():
    s = stats.summarize(list(range(1, 101)))
    assert s["n"] == 100 and s["min"] == 1 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    with pytest.raises(ValueError):
        stats.summarize([])


def test_samples_needed_matches_binomial_bound():
    assert stats.samples_needed(99) == 459
    assert stats.samples_needed(90) == 44
    assert stats.backed_percentiles(500) == ["p50", "p90", "p95", "p99"]
    assert stats.backed_percentiles(5000) == ["p50", "p90", "p95", "p99", "p99.9"]


def test_repeat_interval():
    r = stats.repeat_interval([1.0, 2.0, 3.0])
    assert r["median"] == 2.0 and 0 < r["ci_lo"] < 2.0 < r["ci_hi"] and r["log_scale"] == 1.0
    # skewed positive repeats (a p99 of 2, 3 and 40 ms): the interval stays positive
    skewed = stats.repeat_interval([2.0, 3.0, 40.0])
    assert 0 < skewed["ci_lo"] < 3.0 < skewed["ci_hi"]
    # geometric: symmetric on the log scale around the geometric mean
    assert math.log(r["ci_hi"]) - math.log(6 ** (1 / 3)) == pytest.approx(math.log(6 ** (1 / 3)) - math.log(r["ci_lo"]))
    linear = stats.repeat_interval([-1.0, 0.0, 1.0])
    assert linear["log_scale"] == 0.0 and linear["ci_lo"] < 0 < linear["ci_hi"]
    assert math.isnan(stats.repeat_interval([1.0])["ci_lo"])


def test_window_ends_on_time_and_count():
    calls = []
    policy = stats.WindowPolicy(warmup_seconds=0.05, warmup_samples=3, min_seconds=0.1, min_samples=50,
                                max_seconds=5)
    res = stats.measure_window(lambda: calls.append(1), policy)
    assert res.warmup_count >= 3 and len(res.samples) >= 50 and res.window_seconds >= 0.1
    assert len(calls) == res.warmup_count + len(res.samples)


def test_window_is_bounded():
    policy = stats.WindowPolicy(warmup_seconds=0, warmup_samples=1, min_seconds=0, min_samples=10 ** 9,
                                max_seconds=0.2)
    with pytest.raises(TimeoutError, match="samples"):
        stats.measure_window(lambda: None, policy)


def test_run_dir_refuses_silent_overwrite(tmp_path):
    rd = RunDir(tmp_path / "run").create()
    (rd.path / "x.json").write_text("{}")
    with pytest.raises(RunDirExists, match="--force"):
        RunDir(tmp_path / "run").create()
    RunDir(tmp_path / "run").create(force=True)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    results.atomic_write_text(tmp_path / "a.json", "1")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _boom(payload):
    raise ValueError(f"bad {payload['x']}")


def _double(payload):
    return {"y": payload["x"] * 2, "pid": os.getpid()}


def test_run_isolated_returns_value_in_fresh_process():
    out = proc.run_isolated("tests.test_core:_double", {"x": 21}, timeout=60)
    assert out["y"] == 42 and out["pid"] != os.getpid()


def test_run_isolated_reports_child_traceback():
    with pytest.raises(proc.IsolatedError, match="ValueError: bad 3") as info:
        proc.run_isolated("tests.test_core:_boom", {"x": 3}, timeout=60)
    assert "_boom" in info.value.child_traceback


def test_managed_process_stops_whole_group(tmp_path):
    # a parent that ignores SIGTERM and a child: both must be gone after stop()
    script = "import signal,subprocess,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
             "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    p = proc.ManagedProcess([sys.executable, "-c", script], tmp_path / "p.log").start()
    time.sleep(0.5)
    pgid = p.pid
    t0 = time.monotonic()
    p.stop(timeout=1.0)
    assert time.monotonic() - t0 < 10
    assert proc.group_members(pgid) == []


def test_cli_help_lists_commands_without_heavy_imports():
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys; from deploy_compare.app.cli import main; main(['--help']);"
                          "print('HEAVY' if {'tensorflow','torch'} & set(sys.modules) else 'LIGHT')"],
                         capture_output=True, text=True, timeout=60)
    assert "inspect" in out.stdout and "loadtest" in out.stdout and "LIGHT" in out.stdout


def test_pipeline_rerun_of_one_stage_keeps_other_timings(tmp_path, monkeypatch):
    from deploy_compare.app import pipeline
    from deploy_compare.core.config import QUICK

    calls = []
    monkeypatch.setattr(pipeline, "resolve", lambda target: (lambda ctx: calls.append(target)))
    run_dir = RunDir(tmp_path / "r").create()

    def run(stages):
        cfg = RunConfig(profile=QUICK, run_id="r", results_root=tmp_path, stages=stages)
        pipeline.run_pipeline(pipeline.RunContext(config=cfg, run_dir=run_dir))

    run(("train", "export"))
    run(("export",))
    timings = results.load(list[results.StageTiming], run_dir.stages)
    assert [t.stage for t in timings] == ["train", "export"] and len(calls) == 3


def test_failed_stage_is_recorded_and_raised(tmp_path, monkeypatch):
    from deploy_compare.app import pipeline
    from deploy_compare.core.config import QUICK

    def boom(ctx):
        raise RuntimeError("stage broke")

    monkeypatch.setattr(pipeline, "resolve", lambda target: boom)
    run_dir = RunDir(tmp_path / "r").create()
    cfg = RunConfig(profile=QUICK, run_id="r", results_root=tmp_path, stages=("train",))
    with pytest.raises(RuntimeError, match="stage broke"):
        pipeline.run_pipeline(pipeline.RunContext(config=cfg, run_dir=run_dir))
    [timing] = results.load(list[results.StageTiming], run_dir.stages)
    assert not timing.ok and "stage broke" in timing.error


def test_cli_stops_only_what_the_command_started(tmp_path):
    from deploy_compare.app import cli

    outside = proc.ManagedProcess([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "o.log").start()
    try:
        assert cli.main(["report", str(tmp_path / "missing")]) == 2  # any command; this one fails fast
        assert outside.alive()  # e.g. a session fixture's server survives an in-process CLI call
    finally:
        outside.stop(timeout=2)


def test_median_items_picks_the_median_member_of_each_group():
    items = [("a", 5), ("b", 1), ("a", 1), ("a", 3), ("b", 9)]
    assert stats.median_items(items, key=lambda i: i[0], rank=lambda i: i[1]) == [("a", 3), ("b", 1)]


def _fake_sysfs(root, states):
    """cpu0/cpuidle/state<i>/{name,time} like /sys/devices/system/cpu (time in us)."""
    (root / "cpuidle").mkdir(parents=True)
    (root / "cpuidle" / "current_driver").write_text("haltpoll\n")
    (root / "cpuidle" / "current_governor_ro").write_text("haltpoll\n")
    for i, (name, usec) in enumerate(states):
        d = root / "cpu0" / "cpuidle" / f"state{i}"
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "time").write_text(f"{usec}\n")


def test_cpu_idle_hold_writes_zero_and_measures_each_state(tmp_path):
    import struct

    from deploy_compare.core import cpuidle
    from deploy_compare.loadtests.results import LoadTestResults

    root, device = tmp_path / "cpu", tmp_path / "cpu_dma_latency"
    _fake_sysfs(root, [("POLL", 1_000_000), ("haltpoll idle", 5_000_000)])
    device.write_bytes(b"")
    with cpuidle.hold("poll", device=device, root=root) as rec:
        assert rec.held and rec.driver == "haltpoll" and device.read_bytes() == struct.pack("i", 0)
        (root / "cpu0/cpuidle/state0/time").write_text("4000000\n")  # 3 s polled, 1 s halted in the body
        (root / "cpu0/cpuidle/state1/time").write_text("6000000\n")
    assert rec.idle_seconds == {"POLL": 3.0, "haltpoll idle": 1.0}
    assert rec.polled_fraction == 0.75 and "75.0% of idle time polled" in rec.summary()
    back = results.from_json_data(LoadTestResults, results.to_json_data(
        LoadTestResults(profile="quick", label="", settings={}, locust_version="x", cpu_idle=rec)))
    assert back.cpu_idle == rec


def test_cpu_idle_hold_says_why_it_did_nothing(tmp_path):
    from deploy_compare.core import cpuidle

    root = tmp_path / "cpu"
    _fake_sysfs(root, [("POLL", 0), ("haltpoll idle", 0)])
    with cpuidle.hold("poll", device=tmp_path / "absent", root=root) as rec:  # as when not root: cannot open
        pass
    assert not rec.held and "could not hold" in rec.note and "--cpu-idle default" in rec.note
    no_poll = tmp_path / "other"
    _fake_sysfs(no_poll, [("C1", 0)])
    with cpuidle.hold("poll", device=tmp_path / "absent", root=no_poll) as rec:
        pass
    assert not rec.held and "no cpuidle POLL state" in rec.note
    with cpuidle.hold("default", root=root) as rec:
        pass
    assert not rec.held and "--cpu-idle default" in rec.note and rec.polled_fraction is None
    with pytest.raises(ValueError):
        with cpuidle.hold("spin", root=root):
            pass


@pytest.mark.skipif(not any(
    p.read_text().strip() == "POLL" for p in Path("/sys/devices/system/cpu").glob("cpu0/cpuidle/state*/name")),
    reason=f"{NO_SUCH_HARDWARE} cpuidle POLL state (/sys/devices/system/cpu/cpu0/cpuidle/state*/name): "
           "nothing to hold (the run records the policy as not held, with this reason)")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (writes /dev/cpu_dma_latency): run as root")
def test_cpu_idle_hold_makes_idle_cpus_poll_here():
    import time

    from deploy_compare.core import cpuidle

    with cpuidle.hold("poll") as rec:
        time.sleep(0.5)
    assert rec.held and rec.polled_fraction is not None and rec.polled_fraction > 0.9

