"""The served-stack figures of the report: the serving tax breakdown (non-negative components adding up to
the client's mean), the saturation wording (a sweep that did not saturate is a lower bound), one stored
headroom everywhere, per-point server means from sampled counters, the native-vs-container section and the
profile label."""
from __future__ import annotations

import json
import re

import pytest

from deploy_compare.app.report import fmt
from deploy_compare.app.report.document import Figure
from deploy_compare.app.report.model import (
    FloorRow,
    LatencyStats,
    LoadPoint,
    ReportResults,
    SaturationRow,
)
from deploy_compare.app.report.served import saturation_text
from deploy_compare.app.report.served_sections import containers
from deploy_compare.app.report.tax import breakdown
from deploy_compare.core.stats import backed_percentiles
from deploy_compare.serving.metrics import CounterSample, interval_means
from tests.report_samples import full_results
from tests.test_report_golden import copy_fixture, render_quietly


def lat(mean: float, n: int = 500) -> LatencyStats:
    return LatencyStats(n=n, p50=0.9 * mean, p90=1.5 * mean, p99=3 * mean, p999=5 * mean, mean=mean,
                        backed=backed_percentiles(n))


def point(protocol: str, server: dict[str, float], mean: float = 1.0, harness: float | None = 0.2) -> LoadPoint:
    return LoadPoint("torchserve/onnx", protocol, "mlp", "closed", 1, None, 900.0, lat(mean), launcher="native",
                     harness_mean_ms=harness, server=server)


FLOOR = FloorRow("mlp", "onnxruntime", "pytorch", "onnx", "fp32", 1, 1, 0.1, 0.01, lat(0.007), 1e5, None)
REST = {"mean_inference_ms": 0.55, "mean_queue_ms": 0.05, "mean_worker_thread_ms": 0.12, "mean_prediction_ms": 0.2}
GRPC = {"mean_worker_thread_ms": 0.12, "mean_prediction_ms": 0.2}


@pytest.mark.parametrize("protocol,server,harness", [("rest", REST, 0.2), ("grpc", GRPC, 0.2), ("rest", REST, None),
                                                      ("rest", {}, 0.2)])
def test_breakdown_components_are_non_negative_and_add_up(protocol, server, harness):
    t = breakdown(point(protocol, server, harness=harness), "1 user", FLOOR)
    assert all(c.ms >= 0 for c in t.components), t.components
    assert t.adds_up and abs(t.accounted_ms + t.unaccounted_ms - t.client_mean_ms) <= 0.10 * t.client_mean_ms
    names = [c.name for c in t.components]
    assert ("generator" in names) == (harness is not None)
    if server:
        assert names[-1] == "inference" and t.components[-1].ms == pytest.approx(0.007 * 0.9)  # the floor's p50
    if protocol == "rest" and server:
        by = {c.name: c.ms for c in t.components}
        assert by["outside the server"] == pytest.approx(1.0 - (harness or 0) - 0.55)
        assert by["worker IPC"] == pytest.approx(0.55 - 0.05 - 0.12 - 0.2)


def test_a_part_larger_than_its_whole_is_never_a_negative_component():
    # the handler's time above the server's total (clocks of different resolution): 0, and the excess reported
    server = dict(REST, mean_prediction_ms=0.9)
    t = breakdown(point("rest", server, mean=1.0), "1 user", FLOOR)
    assert all(c.ms >= 0 for c in t.components)
    assert t.overlap_ms == pytest.approx(0.9 + 0.05 + 0.12 - 0.55)
    assert any("larger than its whole" in n for n in t.notes)
    assert t.accounted_ms > t.client_mean_ms  # the overlap shows, it is not hidden in a remainder


def test_server_means_come_from_the_samples_inside_the_point_window():
    def sample(t, requests, total_us):
        return CounterSample(t=t, values={"ts_inference_requests_total": requests,
                                          "ts_inference_latency_microseconds": total_us})

    # a warm-up (at high latency) before the window and a heavier point after it must not leak in
    series = [sample(0.0, 0, 0), sample(0.5, 100, 500_000), sample(1.0, 200, 600_000), sample(1.5, 300, 700_000),
              sample(2.0, 400, 800_000), sample(2.5, 500, 5_000_000)]
    means = interval_means(series, "torchserve", 0.7, 2.2)
    assert means is not None and means.requests == 200 and means.derived["mean_inference_ms"] == pytest.approx(1.0)
    assert interval_means(series, "torchserve", 0.7, 1.2) is None  # one sample inside: no figure, not a guess


def test_a_sweep_that_does_not_saturate_is_labelled_a_lower_bound():
    row = SaturationRow("torchserve/onnx", "rest", "mlp", "native", False, 1809.4, 8, 16, ["last_step"],
                        ["reached the last step (16 users) without a plateau or an SLO breach"])
    assert saturation_text(row) == "at least 1,809 req/s, not saturated by 16 users"
    row.found, row.stop_kinds = True, ["plateau"]
    assert saturation_text(row) == "saturates at 1,809 req/s (8 users)"
    res = full_results()
    md_rows = [r for r in res.scorecard if r.launcher == "docker"]
    assert md_rows and saturation_text(md_rows[0].saturation) == "at least 430 req/s, not saturated by 2 users"


def test_older_loadtest_json_stop_reasons_give_the_verdict(tmp_path):
    """An older loadtest.json stored neither the verdict (`saturation`) nor the sweeps' `stop_kind`: the report
    reads the kind from the stop reason's text. The fixture's sweeps made older, one endpoint's stopped on a
    throughput plateau (lower bounds elsewhere: every quick sweep reached its last step)."""
    run_dir = copy_fixture(tmp_path)
    data = json.loads(run_dir.loadtest.read_text(encoding="utf-8"))
    for i, ep in enumerate(e for e in data["endpoints"] if e["sweeps"]):
        ep.pop("saturation", None)
        for sweep in ep["sweeps"]:
            sweep.pop("stop_kind", None)
            if i == 0:
                sweep["stop_reason"] = "throughput plateau: +1% from the previous step (limit 5%)"
    run_dir.loadtest.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    sats = rendered.results.saturations
    assert sats and {s.found for s in sats} == {True, False}
    md = rendered.markdown.read_text(encoding="utf-8")
    for s in sats:
        expected = "saturates at" if set(s.stop_kinds) <= {"plateau", "slo"} else "at least"
        assert s.found == (expected == "saturates at") and saturation_text(s).startswith(expected)
        assert saturation_text(s) in md
    assert "saturates at" not in "".join(saturation_text(s) for s in sats if not s.found)


def test_headroom_is_one_stored_number_everywhere(tmp_path):
    run_dir = copy_fixture(tmp_path)
    data = json.loads(run_dir.loadtest.read_text(encoding="utf-8"))
    stored = {"rest": 7.25, "grpc": 3.75}  # what the load stage stored (and printed); no other number may appear
    for h in data["headrooms"]:
        h["ratio"] = stored[h["protocol"]]
    run_dir.loadtest.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    from deploy_compare.app.report.summary import headline_rows

    md = rendered.markdown.read_text(encoding="utf-8")
    ratios = set(re.findall(r"\*\*([0-9.]+)x\*\* the fastest", md))
    assert ratios <= {"7.2", "7.3", "3.8", "3.7"} and len(ratios) == 2, ratios
    summary = dict(headline_rows(rendered.results))
    assert summary["generator headroom rest"].startswith(f"{7.25:.1f}x")
    assert summary["generator headroom grpc"].startswith(f"{3.75:.1f}x")


def test_per_protocol_headrooms_are_shown_as_stored(tmp_path):
    run_dir = copy_fixture(tmp_path)
    data = json.loads(run_dir.loadtest.read_text(encoding="utf-8"))
    data["headrooms"] = [
        {"protocol": p, "twin": "mlp", "capacity_rps": c, "capacity_users": 16, "generator_cpu_fraction": 0.95,
         "saturated": True, "limited_by": "generator CPU at its limit", "generator_cpus": [1], "server_cpus": [0],
         "points": [], "fastest_rps": 850.0, "fastest_endpoint": "x", "ratio": r, "min_ratio": 5.0}
        for p, c, r in (("rest", 6000.0, 7.06), ("grpc", 2500.0, 2.94))]
    run_dir.loadtest.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "headroom, rest null endpoint: 6,000/s" in md and "**7.1x**" in md
    assert "headroom, grpc null endpoint: 2,500/s" in md and "**2.9x**" in md


def test_fixture_breakdown_is_per_point_and_adds_up(tmp_path):
    rendered, _ = render_quietly(copy_fixture(tmp_path))
    tax = rendered.results.tax
    assert tax and {t.point.split(",")[0] for t in tax} >= {"1 user"}
    for t in tax:
        assert all(c.ms >= 0 for c in t.components), (t.stack, t.protocol, t.point)
        assert any(c.name in ("handler", "inference") for c in t.components), "no server-side figure"
        # a breakdown that does not add up says why: here (open loop at half the saturation, qb1 of
        # 2026-12-03, 3 of 40) the server's counters spanned a wider window than the point's, warm-up included
        assert t.adds_up or (t.overlap_ms > 0 and any("a part larger than its whole" in n for n in t.notes)
                             and any("warm-up included" in n for n in t.notes)), (t.stack, t.point, t.notes)
    assert all(t.adds_up for t in tax if t.point == "1 user")
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "outside the server" in md.split('<a id="serving-tax"></a>')[1]


def test_native_vs_container_renders_with_both_launchers_and_says_how_otherwise():
    res = full_results()
    text = json.dumps([b.__dict__ for b in containers(res, {})], default=str)
    assert "container tax" in text and "+3.4 s" in text and "+8 ms" in text  # ready 9.5 vs 6.1 s, first 20 vs 12
    assert "-200 MB" in text  # cgroup 700 MB vs native peak RSS 900 MB
    assert "at least 430 req/s, not saturated by 2 users" in text and "saturates at 720 req/s (8 users)" in text
    res.launchers = ["native"]
    (para,) = containers(res, {})
    assert 'make deploy-compare ARGS="--launcher both"' in para.text and "one launcher (native)" in para.text


def test_scorecard_cells_link_to_their_evidence():
    res = full_results()
    from deploy_compare.app.report.served_sections import scorecard

    blocks = scorecard(res, {"scorecard": Figure("plots/scorecard.png", "x")})
    table = next(b for b in blocks if hasattr(b, "rows"))
    assert len(table.rows) == len(res.scorecard) == 3  # rest native, rest docker, grpc native
    for row in table.rows:
        for cell in row[3:]:  # after stack, artifact of (column and server), twin
            assert cell == fmt.NA or re.match(r"^\[[^\]]+\]\(#[a-z-]+\)", cell), cell


def test_ray_serve_rows_are_named_and_get_their_own_same_server_table():
    """Ray Serve's load points (the docker launcher's, as `auto` runs it) become scorecard rows "served by Ray
    Serve", a same-server table of their own (replicas, not workers) and pairs in native vs container."""
    from dataclasses import replace

    from deploy_compare.app.report.model import ColdStartRow
    from deploy_compare.app.report.served import derive_scorecard
    from deploy_compare.app.report.served_sections import runtimes, scorecard

    res = full_results()
    ray = [replace(p, stack="rayserve/onnx-torch", server={}, window_unix=None) for p in res.load_points
           if p.stack == "torchserve/torchscript" and p.protocol == "rest" and p.mode == "closed" and p.valid]
    res.load_points += ray
    res.cold_start.append(ColdStartRow("rayserve", "rayserve/onnx-torch rest", "mlp", 107.0, 1.9, 30.0, 9.0, "log",
                                       launcher="docker"))
    res.scorecard = []
    derive_scorecard(res)
    table = next(b for b in scorecard(res, {}) if hasattr(b, "rows"))
    ray_rows = [row for row in table.rows if row[0].startswith("rayserve/")]
    assert {row[0] for row in ray_rows} == {"rayserve/onnx-torch rest (native)", "rayserve/onnx-torch rest (docker)"}
    assert all(row[1] == "PyTorch, served by Ray Serve" for row in ray_rows), ray_rows
    assert any("ready 107 s" in row[8] for row in ray_rows), ray_rows
    blocks = runtimes(res)
    paras = [b.text for b in blocks if hasattr(b, "text")]
    assert len(paras) == 2 and "(TorchServe, same config, pinning, token and limits)" in paras[0]
    assert "(Ray Serve, same config, pinning and limits)" in paras[1] and "replica" in paras[1]
    ray_table = [b for b in blocks if hasattr(b, "rows")][1]
    assert ray_table.headers[2] == "runtime in the replica" and ray_table.rows[0][2] == "onnxruntime", ray_table.rows
    pairs = json.dumps([b.__dict__ for b in containers(res, {})], default=str)
    assert "rayserve/onnx-torch rest" in pairs


def test_profile_label_is_the_profile_not_quick(tmp_path):
    run_dir = copy_fixture(tmp_path)
    cfg = json.loads(run_dir.config.read_text(encoding="utf-8"))
    cfg["profile"]["name"] = "exhaustive"
    cfg["profile"]["note"] = "exhaustive profile: every point, conventions' windows, 3 repeats"
    cfg["profile"]["load"]["repeats"] = cfg["profile"]["floor"]["repeats"] = 3
    run_dir.config.write_text(json.dumps(cfg), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    assert not rendered.results.single_repeat and "profile **exhaustive**" in md
    assert "**quick profile**" not in md and "Single repeats carry no interval" not in md


def test_results_without_window_bounds_say_which_field_is_missing(tmp_path):
    run_dir = copy_fixture(tmp_path)
    data = json.loads(run_dir.loadtest.read_text(encoding="utf-8"))
    for ep in data["endpoints"]:
        for p in [q for s in ep["sweeps"] for q in s["points"]] + ep["open_points"]:
            p.pop("window_start_unix", None)
            p.pop("window_end_unix", None)
    run_dir.loadtest.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    part = rendered.markdown.read_text(encoding="utf-8").split('<a id="serving-tax"></a>')[1].split("<a id=")[0]
    assert "`window_start_unix`, `window_end_unix` in loadtest.json" in part
    assert all(not any(c.name == "handler" or c.name == "inference" for c in t.components)
               for t in rendered.results.tax)


def test_report_results_round_trip_with_the_new_rows(tmp_path):
    from deploy_compare.core import results

    res = full_results()
    assert res.tax and res.scorecard and res.saturations
    assert results.load(ReportResults, results.save(res, tmp_path / "r.json")) == res


def test_around_samples_the_counters_during_the_window(monkeypatch):
    """The sampler thread stamps each scrape with wall-clock time; before and after are in the series too."""
    import time

    from deploy_compare.serving import metrics
    from deploy_compare.serving.endpoint import Endpoint

    count = iter(range(10_000))

    def fake_scrape(url, timeout=5.0):
        n = next(count)
        return metrics.parse_prometheus(f'ts_inference_requests_total{{model_name="m",}} {10 * n}\n'
                                        f'ts_inference_latency_microseconds{{model_name="m",}} {5000 * n}\n'
                                        f'PredictionTime_sum{{ModelName="m",Level="Model",}} {0.2 * n}\n'
                                        f'PredictionTime_count{{ModelName="m",Level="Model",}} {n}\n'
                                        f'WorkerThreadTime_sum{{Level="Host",}} {0.1 * n}\n'
                                        f'WorkerThreadTime_count{{Level="Host",}} {n}\n')

    monkeypatch.setattr(metrics, "scrape", fake_scrape)
    windows = []
    ep = Endpoint(stack="torchserve/onnx", server="torchserve", protocol="rest", model="mlp", served_name="m",
                  target="http://127.0.0.1:1/predictions/m", layout="NF", metrics_url="http://127.0.0.1:1/metrics")
    t0 = time.time()
    with metrics.make_around(windows, sample_interval=0.02)(ep):
        time.sleep(0.2)
    [w] = windows
    assert w.error is None and len(w.series) >= 5
    assert [s.t for s in w.series] == sorted(s.t for s in w.series) and w.series[0].t >= t0
    assert w.derived["mean_inference_ms"] == pytest.approx(0.5)  # 5000 us per 10 requests
    assert w.derived["mean_prediction_ms"] == pytest.approx(0.2) and w.derived["mean_worker_thread_ms"] == 0.1
    means = interval_means(w.series, "torchserve", w.series[1].t, w.series[-2].t)
    assert means is not None and means.derived["mean_inference_ms"] == pytest.approx(0.5)


def test_torchserve_metrics_config_declares_per_request_times_as_histograms():
    import yaml

    from deploy_compare.serving.torchserve.config import METRICS_YAML, TorchServeConfig

    spec = yaml.safe_load(METRICS_YAML)
    histograms = {m["name"] for m in spec["ts_metrics"]["histogram"] + spec["model_metrics"]["histogram"]}
    assert histograms == {"QueueTime", "WorkerThreadTime", "HandlerTime", "PredictionTime"}
    counters = {m["name"] for m in spec["ts_metrics"]["counter"]}
    assert {"ts_inference_requests_total", "ts_inference_latency_microseconds",
            "ts_queue_latency_microseconds"} <= counters
    cfg = TorchServeConfig(bind_host="127.0.0.1", ports={k: 1 for k in ("inference", "management", "metrics",
                                                                           "grpc_inference", "grpc_management")},
                           model_store="/s", models={"m": "m.mar"}, workers=1, netty_threads=1, batch_size=1,
                           max_batch_delay_ms=5, metrics_config="/state/metrics.yaml")
    assert cfg.properties()["metrics_config"] == "/state/metrics.yaml"
    assert "metrics_config" not in TorchServeConfig(**{**cfg.__dict__, "metrics_config": ""}).properties()


def test_points_of_every_window_of_an_endpoint_get_their_server_means():
    """An endpoint measured in several windows (repeats in rotation): each point finds its own samples."""
    from deploy_compare.app.report.collect import attach_server_means
    from deploy_compare.app.report.model import ServerWindow

    def window(t0):
        return ServerWindow("torchserve", "torchserve/onnx", "rest", "mlp", 10.0, None, None, None,
                            launcher="native", series=[
                                CounterSample(t0 + i, {"ts_inference_requests_total": 100.0 * (t0 + i),
                                                       "ts_inference_latency_microseconds": 1000.0 * t0 * (t0 + i)})
                                for i in range(5)])

    res = ReportResults(run_id="r", single_repeat=False, settings=None, environment=None,
                        server_windows=[window(10), window(100)])
    early, late = point("rest", {}), point("rest", {})
    early.window_unix, late.window_unix = (10.5, 13.5), (100.5, 103.5)
    res.load_points = [early, late]
    attach_server_means(res)
    assert early.server["mean_inference_ms"] == pytest.approx(0.1) and late.server["mean_inference_ms"] == 1.0
    assert early.server_requests == late.server_requests == 200


def test_a_paired_window_shorter_than_two_samples_takes_its_bracketing_scrapes_and_says_so():
    """Quick's paired windows (0.3 s) are shorter than the sampler's 0.5 s: the scrapes just before the window's
    command and after its result bracket it (warm-up included, said so); a bracket holding two windows gives
    no figure."""
    from deploy_compare.app.report.collect import attach_server_means
    from deploy_compare.app.report.model import ServerWindow

    def window(t0, t1, requests):
        return ServerWindow("torchserve", "torchserve/onnx", "rest", "mlp", t1 - t0, None, None, None,
                            launcher="native", sample_interval_s=0.5, series=[
                                CounterSample(t0, {"ts_inference_requests_total": 0.0,
                                                   "ts_inference_latency_microseconds": 0.0}),
                                CounterSample(t1, {"ts_inference_requests_total": requests,
                                                   "ts_inference_latency_microseconds": 700.0 * requests})])

    res = ReportResults(run_id="r", single_repeat=False, settings=None, environment=None,
                        server_windows=[window(10.0, 10.55, 500.0), window(20.0, 21.0, 800.0)])
    alone, first, second = point("rest", {}), point("rest", {}), point("rest", {})
    alone.window_unix, first.window_unix, second.window_unix = (10.2, 10.5), (20.1, 20.4), (20.5, 20.9)
    res.load_points = [alone, first, second]
    attach_server_means(res)
    assert alone.server["mean_inference_ms"] == pytest.approx(0.7) and alone.server_requests == 500
    assert "warm-up included" in alone.server_note and "0.5 s period" in alone.server_note
    assert not first.server and not second.server  # two windows in one bracket: no figure, not a guess
    assert any(alone.server_note in n for n in breakdown(alone, "1 user", FLOOR).notes)


@pytest.mark.integration
def test_real_torchserve_accounts_each_request_over_rest_and_grpc(torchserve_mlp):
    """With our metrics.yaml, TorchServe's per-request times are scrapeable sums and counts: the worker thread and
    the handler over both protocols, the server total and queue over REST (0.12 does not time gRPC there)."""
    import numpy as np

    from deploy_compare.serving.clients import make_client
    from deploy_compare.serving.metrics import make_around

    for ep in torchserve_mlp.endpoints():
        windows = []
        with make_around(windows, sample_interval=0.05)(ep), make_client(ep) as client:
            x = np.zeros((1, 64), np.float32)
            for _ in range(40):
                client.predict(x)
        [w] = windows
        assert w.error is None and len(w.series) >= 3, (ep.protocol, w.notes)
        assert w.delta["ts_inference_requests_total"] == 40
        assert 0 < w.derived["mean_prediction_ms"] < w.derived.get("mean_inference_ms", 1e9)
        assert w.derived["mean_worker_thread_ms"] >= 0
        assert ("mean_inference_ms" in w.derived) == (ep.protocol == "rest")


def test_cpu_idle_and_machine_reference_are_shown_as_stored_or_said_missing(tmp_path):
    run_dir = copy_fixture(tmp_path)
    data = json.loads(run_dir.loadtest.read_text(encoding="utf-8"))
    data.pop("cpu_idle", None)
    data.pop("reference", None)
    run_dir.loadtest.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "CPU idle policy: not recorded" in md and "Machine reference: not recorded" in md
    data["reference"] = {"loop": "the loop", "server_cpus": [0], "generator_cpus": [1], "failure": None,
                         "samples": [{"before": b, "unix": 1.0, "count": n, "seconds": 1.0, "rps": float(n),
                                      "p50_ms": 0.1} for b, n in (("x rest", 8000), ("the end", 10000))]}
    data["cpu_idle"] = {"policy": "poll", "held": False, "driver": "haltpoll", "governor": "haltpoll",
                        "note": "could not hold /dev/cpu_dma_latency at 0 us (Permission denied)",
                        "idle_seconds": {"POLL": 1.0, "haltpoll idle": 3.0}}
    run_dir.loadtest.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "CPU idle: poll, not held (could not hold /dev/cpu_dma_latency at 0 us (Permission denied)); " \
           "25.0% of idle time polled." in md
    assert "Machine reference (the loop): before x rest: 8,000/s (p50 0.1 ms); before the end: 10,000/s" in md
    assert "It moved **25%** (max/min) during this stage" in md
    assert "The machine's reference loop moved 25% during the load stage" in md  # under the scorecard too
    assert "Load measured with idle CPUs as the kernel chose" in md


def test_floor_repeats_that_disagree_are_named_with_their_cv(tmp_path):
    run_dir = copy_fixture(tmp_path)
    path = run_dir.path / "floor.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    interval = {"repeats": 3.0, "median": 0.0176, "mean": 0.02, "ci_lo": 0.01, "ci_hi": 0.03, "log_scale": 1.0}
    data["spread"] = [  # as the full profile's floor stores it; run full4 had CVs up to 31% this way
        {"twin": "mlp", "runtime": "torchscript", "variant": "fp32", "artifact": "mlp/torchscript/fp32", "threads": 1,
         "p50_ms": [0.0176, 0.0173, 0.0260], "interval": interval},
        {"twin": "mlp", "runtime": "onnxruntime", "variant": "fp32", "artifact": "mlp/onnx-torch/fp32", "threads": 1,
         "p50_ms": [0.0067, 0.0068, 0.0068], "interval": {**interval, "median": 0.0068}}]
    path.write_text(json.dumps(data), encoding="utf-8")
    rendered, _ = render_quietly(run_dir)
    md = rendered.markdown.read_text(encoding="utf-8")
    assert "(3x, CV 24.3%)" in md and "(3x, CV 0.9%)" in md
    assert "Repeats disagree (batch-1 p50 CV above 5%): mlp torchscript CV 24.3%." in md
