"""A hand-made `ReportResults` with every section filled, invalid points included: exercises the renderers and
plots independently of the stage modules (the golden test covers the path from a run folder)."""
from __future__ import annotations

from deploy_compare.app.report import claims
from deploy_compare.app.report.model import (
    ArtifactRow,
    ColdStartRow,
    FloorRow,
    GraphRatio,
    Headroom,
    LatencyStats,
    LoadPoint,
    MemoryRow,
    ModelRow,
    NotRunRow,
    ReportResults,
    SaturationRow,
    ServedParityRow,
    SettingsView,
    TheanoRow,
)
from deploy_compare.app.report.served import derive_scorecard
from deploy_compare.app.report.tax import derive_tax
from deploy_compare.core.stats import backed_percentiles


def lat(p50: float, n: int = 300, spread: float = 1.0) -> LatencyStats:
    return LatencyStats(n=n, p50=p50, p90=p50 * (1 + 0.5 * spread), p99=p50 * (1 + 2 * spread),
                        p999=p50 * (1 + 4 * spread), mean=p50 * 1.1, backed=backed_percentiles(n),
                        p95=p50 * (1 + spread))


def full_results() -> ReportResults:
    res = ReportResults(
        run_id="synthetic", single_repeat=True, environment=None,
        settings=SettingsView(run_id="synthetic", profile="quick", profile_note="quick profile: one repeat",
                              repeats_floor=1, repeats_load=1, floor_threads=[1], floor_batches=[1, 32],
                              floor_window="window >= 1 s and >= 200 samples", load_window="window >= 3 s",
                              serve={"workers": "1", "launcher": "native",
                                     "CPU placement": "server 0, generator 1"}))
    res.models = [ModelRow("mlp", "digits-flat", "Keras (fit)", 17226, 0.95, 1.2, 8)]
    res.artifacts = [
        ArtifactRow("mlp/savedmodel/fp32", "mlp", "savedmodel", "fp32", "tensorflow", 178_000, 0.4,
                    2e-7, 1e-6, 1.0, 0.95, "pass"),
        ArtifactRow("mlp/tflite/int8-dynamic", "mlp", "tflite", "int8-dynamic", "tensorflow", 24_000, 0.8,
                    3e-2, 1e-2, 0.98, 0.94, "reported"),
        ArtifactRow("mlp/torchscript/fp32", "mlp", "torchscript", "fp32", "pytorch", 79_000, 1.4,
                    3e-7, 1e-6, 1.0, 0.95, "pass"),
        ArtifactRow("mlp/onnx-torch/fp32", "mlp", "onnx", "fp32", "pytorch", 75_000, 4.8,
                    5e-4, 1e-3, 0.97, 0.93, "fail", "max abs error 5.0e-04 > 1e-04"),
    ]
    res.floor = [
        FloorRow("mlp", "savedmodel", "tensorflow", "savedmodel", "fp32", 1, 1, 0.9, 0.05, lat(0.21), 4500.0,
                 600_000_000),
        FloorRow("mlp", "torchscript", "pytorch", "torchscript", "fp32", 1, 1, 0.1, 0.01, lat(0.03), 30000.0,
                 300_000_000, repeats=3, p50_median_ms=0.031, p50_ci_ms=(0.028, 0.034)),
        FloorRow("mlp", "onnxruntime", "pytorch", "onnx", "fp32", 1, 1, 0.05, 0.001, lat(0.012), 70000.0,
                 90_000_000),
    ]
    res.harness_overhead = [FloorRow("mlp", "null", "none", "trained", "fp32", 1, 1, None, None, lat(0.0004),
                                     None, None)]
    res.graph_ratios = [GraphRatio("tensorflow", "mlp", 1, "keras-eager", "savedmodel", 1.9, 0.21, 9.05, 32, 4.1),
                        GraphRatio("pytorch", "mlp", 1, "torch-eager", "torchscript", 0.035, 0.03, 1.17, 32, None)]
    res.theano = TheanoRow("theano is not installed.", "not tried in this run", "pytensor", {"mlp": 3.2}, {"mlp": 0.02},
                           {"export_format": "none", "server": "none"})
    res.cold_start = [ColdStartRow("torchserve", "torchserve/torchscript", "mlp", 6.1, 0.4, 12.0, 1.4, "log")]
    res.served_parity = [ServedParityRow("torchserve/torchscript", "rest", "mlp", 2e-7, 1.0, True),
                         ServedParityRow("torchserve/onnx", "grpc", "mlp", 2e-3, 0.9, False)]
    closed = [LoadPoint("torchserve/torchscript", "rest", "mlp", "closed", u, None, t, lat(p, 400), launcher="native",
                        harness_mean_ms=0.2 * u, harness_p50_ms=0.18 * u, window_unix=(100.0 * u, 100.0 * u + 10),
                        server={"mean_inference_ms": 0.6 * p, "mean_queue_ms": 0.1 * p * (u - 1),
                                "mean_worker_thread_ms": 0.3, "mean_prediction_ms": 0.25}, server_requests=t * 10)
              for u, t, p in ((1, 300, 3.0), (2, 520, 3.8), (4, 700, 5.5), (8, 720, 11.0))]
    closed += [LoadPoint("torchserve/torchscript", "rest", "mlp", "closed", u, None, t, lat(p, 400), launcher="docker",
                         server={"mean_worker_thread_ms": 0.35, "mean_prediction_ms": 0.26})
               for u, t, p in ((1, 250, 3.6), (2, 430, 4.5))]
    closed.append(LoadPoint("torchserve/torchscript", "rest", "mlp", "closed", 16, None, 650, lat(40.0, 400),
                            generator_cpu=0.97, valid=False, invalid_reasons=["generator CPU 97% > 90%"],
                            launcher="native"))
    closed += [LoadPoint("torchserve/torchscript", "grpc", "mlp", "closed", u, None, t, lat(p, 500), repeats=3,
                         launcher="native",
                         intervals={"throughput_rps": {"median": t, "ci_lo": t * 0.9, "ci_hi": t * 1.1},
                                    "p99_ms": {"median": 3 * p, "ci_lo": 2.5 * p, "ci_hi": 3.5 * p}})
               for u, t, p in ((1, 450, 2.1), (2, 800, 2.4), (4, 1000, 3.9))]
    opened = [LoadPoint("torchserve/torchscript", "rest", "mlp", "open", None, 360, 355, lat(4.0, 1000, 2.0),
                        uncorrected=lat(3.2, 1000), late_fraction=0.002, server_cpus=[0], generator_cpus=[1],
                        launcher="native", scheduling="SCHED_FIFO 1"),
              LoadPoint("torchserve/torchscript", "grpc", "mlp", "open", None, 500, 470, lat(9.0, 1000, 3.0),
                        uncorrected=lat(3.0, 1000), late_fraction=0.04, valid=False,
                        invalid_reasons=["4% of sends > 1 ms late"], launcher="native")]
    res.load_points = closed + opened
    res.saturations = [
        SaturationRow("torchserve/torchscript", "rest", "mlp", "native", True, 720.0, 8, 16, ["plateau"],
                      ["throughput plateau: the steps to 8 and 16 users added +2.9% and -9.7% (< 5% each)"]),
        SaturationRow("torchserve/torchscript", "rest", "mlp", "docker", False, 430.0, 2, 2, ["last_step"],
                      ["reached the last step (2 users) without a plateau or an SLO breach"]),
        SaturationRow("torchserve/torchscript", "grpc", "mlp", "native", False, 1000.0, 4, 4, ["last_step"] * 3,
                      ["reached the last step (4 users) without a plateau or an SLO breach"] * 3,
                      {"median": 1000.0, "ci_lo": 900.0, "ci_hi": 1100.0})]
    res.launchers = ["native", "docker"]
    res.cold_start.append(ColdStartRow("torchserve", "torchserve/torchscript rest", "mlp", 9.5, 0.5, 20.0, 1.6, "log",
                                       launcher="docker"))
    res.cold_start[0].launcher, res.cold_start[0].stack = "native", "torchserve/torchscript rest"
    res.served_parity[0].launcher = "native"
    res.served_parity.append(ServedParityRow("torchserve/torchscript", "rest", "mlp", 2e-7, 1.0, True, "docker"))
    res.memory = [MemoryRow("torchscript (mlp)", "in-process", 300_000_000),
                  MemoryRow("torchserve", "server", 900_000_000, server="torchserve", launcher="native"),
                  MemoryRow("torchserve", "server", 950_000_000, server="torchserve", launcher="docker",
                            cgroup_bytes=700_000_000)]
    res.headrooms = [Headroom(throughput=9000.0, per_core=None, cpus=[1], p50_ms=0.1, fastest_server=1000.0,
                              ratio=9.0, protocol="rest"),
                     Headroom(throughput=3300.0, per_core=None, cpus=[1], p50_ms=0.3, fastest_server=1000.0,
                              ratio=3.3, protocol="grpc", note="generator CPU reached its limit")]
    derive_tax(res)
    derive_scorecard(res)
    res.not_run = [NotRunRow("serving.json", "tfserving/savedmodel/rest", "no tensorflow_model_server binary and no "
                             "Docker engine", "docker pull tensorflow/serving:2.19.1")]
    res.comparison = claims.comparison(res)
    return res
