"""Both columns served (unit, on a hand-made aggregate): the TensorFlow rows in the scorecard labelled as served by
TorchServe, the "same server, each runtime" section (its conditions stated, no ranking), the Deployment cells
citing the served rows of their own column, and the dated maintenance table in the comparison section."""
from __future__ import annotations

from deploy_compare.app.report import claims
from deploy_compare.app.report.model import (
    ArtifactRow,
    ColdStartRow,
    FloorRow,
    LoadPoint,
    NotRunRow,
    ReportResults,
    SaturationRow,
    WorkerMemoryRow,
)
from deploy_compare.app.report.sections import comparison
from deploy_compare.app.report.served import derive_scorecard
from deploy_compare.app.report.served_sections import column_of, runtimes
from deploy_compare.core.cpuidle import CpuIdleRecord
from deploy_compare.serving import maintenance
from tests.report_samples import lat

STACKS = {"torchserve/savedmodel": ("savedmodel", "savedmodel", "tensorflow", "savedmodel", 0.30, 1.4, 900),
          "torchserve/onnx-tf": ("onnx-tf", "onnx", "tensorflow", "onnxruntime", 0.01, 0.8, 300),
          "torchserve/torchscript": ("torchscript", "torchscript", "pytorch", "torchscript", 0.02, 0.9, 310)}


def two_columns() -> ReportResults:
    res = ReportResults(run_id="t", single_repeat=True, settings=None, environment=None, launchers=["native"])
    res.cpu_idle = CpuIdleRecord(policy="poll", held=True, driver="haltpoll", governor="haltpoll", note="")
    for stack, (exporter, fmt, framework, runtime, floor_ms, served_ms, worker_mb) in STACKS.items():
        res.artifacts.append(ArtifactRow(f"mlp/{exporter}/fp32", "mlp", fmt, "fp32", framework, 70_000, 1.0))
        res.floor.append(FloorRow("mlp", runtime, framework, fmt, "fp32", 1, 1, 0.1, 0.01, lat(floor_ms), 1e4, None))
        for protocol in ("rest", "grpc"):
            res.load_points.append(LoadPoint(stack, protocol, "mlp", "closed", 1, None, 800.0, lat(served_ms),
                                             launcher="native", server_cpus=[0]))
            res.saturations.append(SaturationRow(stack, protocol, "mlp", "native", True, 1500.0, 4, 16, ["plateau"],
                                                 ["plateau"]))
            res.cold_start.append(ColdStartRow("torchserve", f"{stack} {protocol}", "mlp", 40.0, 2.5, 12.0, 1.0,
                                               "server metrics", launcher="native"))
        res.workers.append(WorkerMemoryRow("torchserve", "native", f"mlp-{exporter}", stack, "mlp", "ready",
                                           worker_mb * 2**20, worker_mb * 2**20))
    res.not_run.append(NotRunRow("serving.json", "tfserving", "no tensorflow_model_server binary, no image",
                                 "docker pull tensorflow/serving:2.21.0 && deploy-compare run --launcher docker"))
    derive_scorecard(res)
    res.comparison = claims.comparison(res)
    return res


def test_the_tensorflow_rows_are_in_the_scorecard_served_by_torchserve_with_their_worker_memory():
    res = two_columns()
    rows = {(r.stack, r.protocol): r for r in res.scorecard}
    assert len(rows) == 6
    saved = rows[("torchserve/savedmodel", "rest")]
    assert column_of(saved) == "TensorFlow/Keras, served by TorchServe" and saved.runtime == "savedmodel"
    assert saved.floor_p50_ms == 0.30 and saved.served_p50_ms == 1.4 and saved.worker_bytes == 900 * 2**20
    assert saved.artifact_bytes == 70_000 and saved.model_load_s == 2.5 and saved.saturation.rps == 1500.0
    assert column_of(rows[("torchserve/torchscript", "grpc")]) == "PyTorch, served by TorchServe"


def test_same_server_each_runtime_states_its_conditions_and_ranks_nothing():
    res = two_columns()
    _, table = runtimes(res)
    assert [r[0] for r in table.rows] == list(STACKS)
    saved = table.rows[0]
    assert saved[2] == "savedmodel" and "rest 1.1 ms / grpc 1.1 ms" in saved[6]  # served - in-process, per protocol
    notes = " ".join(table.footnotes)
    assert "No ranking: not measured side by side" in notes
    assert "idle policy (in-process: the kernel's choice" in notes and "idle CPUs polling" in notes
    assert "faster" not in " ".join(" ".join(r) for r in table.rows)


def test_deployment_cells_cite_their_own_columns_served_rows_and_the_cited_status():
    cells = next(r for r in two_columns().comparison if r.feature == "Deployment").cells
    tf, keras, torch = (" | ".join(cells[c].measured) for c in ("TensorFlow", "Keras", "PyTorch"))
    assert "served by TorchServe](#runtimes) savedmodel rest (mlp): p50 at 1 user 1.4 ms" in tf
    assert "onnx-tf" not in tf and "torchscript" not in tf.replace("TorchScript", "")
    assert "served by TorchServe](#runtimes) onnx-tf grpc" in keras
    assert "torchscript rest" in torch and "savedmodel" not in torch and "onnx-tf" not in torch
    assert "TF Serving](#not-run) (tfserving) not run here" in tf and "runs with `docker pull" in tf
    assert "TF Serving" not in torch and "served by TF Serving" not in tf
    assert "limited maintenance" in torch and maintenance.LABEL in torch and maintenance.LABEL in tf


def test_the_comparison_section_shows_the_dated_maintenance_table_without_live_links():
    blocks = comparison(two_columns(), {})
    text = " ".join(getattr(b, "text", "") for b in blocks)
    assert maintenance.LABEL in text
    table = blocks[-1]
    assert table.headers == maintenance.HEADERS and {r[0] for r in table.rows} >= {"TorchServe", "TF Serving"}
    cells = " ".join(" ".join(r) for r in table.rows)
    assert "pytorch/serve#3396" in cells and "kserve/kserve#5638" in cells and "https://" not in cells
