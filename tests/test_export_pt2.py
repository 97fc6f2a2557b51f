"""torch.export programs and AOTInductor packages of the mlp (`pt2_run`: one AOTI compile per session): records,
inspect's signature, the compile cache, parity, an independent check with torch's own loaders in a fresh process,
and TorchServe serving both over REST and gRPC."""
from __future__ import annotations

import pytest

from deploy_compare.models.exporters.stage import load_manifest
from deploy_compare.models.parity import ParityTolerance, load_report

pytestmark = pytest.mark.slow


def test_records_signature_and_compile_figure(pt2_run):
    from deploy_compare.models.inspect import inspect_artifact

    records = {r.format: r for r in load_manifest(pt2_run).artifacts}
    assert set(records) == {"torch-export", "aoti"}
    for fmt, rec in records.items():
        info = inspect_artifact(pt2_run.path / rec.path)
        assert info.format == fmt and info.sha256 == rec.sha256, fmt
        assert rec.dynamic_batch and rec.inputs[0].shape == [None, 64], fmt
        assert rec.outputs[0].shape == [None, 10], fmt
    assert records["aoti"].compile_seconds > 1 and records["aoti"].compile_cached is False
    assert records["torch-export"].compile_seconds is None
    assert "aten.linear.default" in inspect_artifact(pt2_run.path / records["torch-export"].path).op_counts


def test_aoti_compile_is_reused_from_the_run_cache(pt2_run):
    from deploy_compare.models.exporters.aoti import AotiExporter
    from deploy_compare.models.exporters.stage import jobs_for

    first = next(r for r in load_manifest(pt2_run).artifacts if r.format == "aoti")
    (again,) = AotiExporter().export(jobs_for(pt2_run, "mlp")["pytorch"])
    assert again.compile_cached is True and again.compile_seconds == first.compile_seconds
    assert again.sha256 == first.sha256 and again.export_seconds < first.export_seconds


def test_parity_passes(pt2_run):
    report = load_report(pt2_run)
    assert {r.runtime for r in report.rows} == {"torch-export", "aoti"}
    for row in report.rows:
        assert row.ok, (row.artifact, row.problem())


def test_floor_measures_both_with_parity_against_eager(pt2_run):
    from dataclasses import replace

    from rich.console import Console

    from deploy_compare.models.floor.plan import twin_runtimes
    from deploy_compare.models.floor.stage import measure
    from tests.test_floor_stage import TINY

    # the two artifacts and eager PyTorch (the graph row's other side); no other trained-twin runtime
    others = tuple(f"mlp/{cls.name}" for cls in twin_runtimes() if cls.name != "torch-eager")
    floor = measure(pt2_run, ["mlp"], replace(TINY, exclude=others), "pt2", "test", Console(quiet=True))
    points = {p.spec.runtime: p for p in floor.points}
    assert set(points) == {"torch-export", "aoti", "torch-eager"}
    for name, p in points.items():
        assert p.ok, (name, p.error)
        assert p.load_seconds > 0 and p.first_inference_seconds > 0 and p.at(1).latency.stats["p50"] > 0
        assert p.parity.passed and p.parity.max_abs_err <= 1e-4, name
    assert {(g.eager, g.graph) for g in floor.graph_ratios} == {("torch-eager", "torch-export"),
                                                               ("torch-eager", "aoti")}


def test_independent_loaders_in_a_fresh_process_give_the_stored_parity(pt2_run):
    from tests.independent import agrees, check

    rows = check(pt2_run.path, ("torch-export", "aoti"))
    assert {key for key, _, _ in rows} == {"mlp/torch-export/fp32", "mlp/aoti/fp32"}
    for key, got, stored in rows:
        assert agrees(got, stored), (key, got, stored)
        assert got["top1_agreement"] == 1.0, key


@pytest.mark.integration
def test_torchserve_serves_both_with_parity_over_rest_and_grpc(pt2_run):
    from deploy_compare.serving.session import served_parity
    from tests.servers import running_torchserve

    with running_torchserve(pt2_run, twins=("mlp",), formats=("torch-export", "aoti")) as server:
        rows = [served_parity(ep, pt2_run, ParityTolerance()) for ep in server.endpoints()]
    assert {(r.served_name, r.protocol) for r in rows} == {
        (n, p) for n in ("mlp-torch-export", "mlp-aoti") for p in ("rest", "grpc")}
    for r in rows:
        assert r.ok, (r.served_name, r.protocol, r.problem())
