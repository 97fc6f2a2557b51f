"""What is served, by which name, and which loader runs it (unit): the catalog's rows, unique and readable
served names and stacks for both columns, the handler's format -> loader table (importing no framework until
a model is loaded), which endpoints the load stage takes, and the cited maintenance table in the docs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy_compare.core.config import EXHAUSTIVE, QUICK
from deploy_compare.models.exporters.base import ArtifactRecord, Manifest, TensorSpec, digest, load_exporters
from deploy_compare.serving import maintenance
from deploy_compare.serving.catalog import SERVED_FORMATS, served_format, served_models, stack_name
from deploy_compare.serving.endpoint import Endpoint
from deploy_compare.serving.torchserve import handler

ROOT = Path(__file__).resolve().parent.parent
# (exporter, format, framework, variant) of every artifact an export stage writes for one twin
EXPORTED = [("torchscript", "torchscript", "pytorch", "fp32"), ("onnx-torch", "onnx", "pytorch", "fp32"),
            ("savedmodel", "savedmodel", "tensorflow", "fp32"), ("onnx-tf", "onnx", "tensorflow", "fp32"),
            *[("tflite", "tflite", "tensorflow", v) for v in ("fp32", "int8-dynamic", "fp16")]]


def _manifest(tmp_path: Path) -> Manifest:
    records = []
    for exporter, fmt, framework, variant in EXPORTED:
        art = tmp_path / "artifacts" / "mlp" / exporter / variant / "model"
        art.parent.mkdir(parents=True)
        art.write_bytes(f"{exporter} {variant}".encode())
        sha, size = digest(art)
        records.append(ArtifactRecord(
            twin="mlp", format=fmt, variant=variant, source_framework=framework, exporter=exporter,
            path=art.relative_to(tmp_path).as_posix(), sha256=sha, bytes=size,
            inputs=[TensorSpec("input", [None, 64], "float32")], outputs=[TensorSpec("logits", [None, 10], "float32")],
            layout="NF", dynamic_batch=True, export_seconds=0.1))
    return Manifest(run_id="t", artifacts=records)


def test_torchserve_serves_every_artifact_of_both_columns_under_unique_readable_names(tmp_path):
    manifest = _manifest(tmp_path)
    models = served_models(tmp_path, manifest, "torchserve")
    names = [m.served_name for m in models]
    assert sorted(names) == sorted(["mlp-torchscript", "mlp-onnx-torch", "mlp-savedmodel", "mlp-onnx-tf", "mlp-tflite",
                                    "mlp-tflite-int8-dynamic", "mlp-tflite-fp16"])
    stacks = {m.stack("torchserve") for m in models}
    assert len(stacks) == len(models) and {"torchserve/onnx-torch", "torchserve/onnx-tf"} <= stacks
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for n in names)
    assert {m.served_name for m in models if not m.gated} == {"mlp-tflite-int8-dynamic", "mlp-tflite-fp16"}
    # TF Serving: the SavedModel only, under the same name; a format filter takes exporter names
    assert [m.served_name for m in served_models(tmp_path, manifest, "tfserving")] == ["mlp-savedmodel"]
    only = served_models(tmp_path, manifest, "torchserve", formats=["onnx-tf"])
    assert [(m.served_name, m.framework, m.layout) for m in only] == [("mlp-onnx-tf", "tensorflow", "NF")]


def test_catalog_rows_name_real_exporters_and_every_stack_maps_back_to_its_row():
    from deploy_compare.models.subjects.onnx import OnnxFileCopy  # a user's ONNX file: not a registered exporter

    exporters = {cls.name: cls for cls in (load_exporters().get(n) for n in load_exporters().names())}
    exporters[OnnxFileCopy.name] = OnnxFileCopy
    for server, rows in SERVED_FORMATS.items():
        for row in rows:
            assert exporters[row.exporter].format == row.format
            assert exporters[row.exporter].source_framework == row.framework
            for variant in row.variants:
                assert served_format(stack_name(server, row.exporter, variant)) == (row, variant)
    assert served_format("torchserve/onnx") is None  # an older run's stack: not in the catalog


def test_the_handler_loads_every_format_torchserve_serves_and_imports_no_framework_until_then():
    assert {row.format for row in SERVED_FORMATS["torchserve"]} <= set(handler.LOADERS)
    # the handler module alone (as the worker imports it): numpy only; each loader imports its own framework
    code = (f"import runpy, sys; runpy.run_path({str(Path(handler.__file__))!r}); "
            "bad = [m for m in ('tensorflow', 'onnxruntime', 'ai_edge_litert', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


class _Context:
    def __init__(self, model_dir: Path) -> None:
        self.system_properties = {"model_dir": str(model_dir)}


def test_an_unknown_format_is_refused_by_name(tmp_path):
    (tmp_path / "signature.json").write_text('{"format": "pt2", "threads": 1, "artifact": "m", "input_shape": [2], '
                                             '"dtype": "float32"}')
    with pytest.raises(ValueError, match="cannot load 'pt2' artifacts"):
        handler.InstancesHandler().initialize(_Context(tmp_path))


def _endpoint(model: str, variant: str) -> Endpoint:
    return Endpoint(stack=stack_name("torchserve", "tflite", variant), server="torchserve", protocol="rest",
                    model=model, served_name="x", target="http://127.0.0.1:1/", layout="NHWC", variant=variant)


def test_the_load_stage_takes_the_profiles_twins_and_fp32_only_unless_told():
    from deploy_compare.loadtests.stage import choose_endpoints

    eps = [_endpoint(m, v) for m in ("mlp", "cnn") for v in ("fp32", "int8-dynamic", "fp16")]
    chosen, left = choose_endpoints(eps, QUICK.load, "quick")
    assert [(e.model, e.variant) for e in chosen] == [("mlp", "fp32")]
    assert len(left) == 5 and any("only variants" in n.reason and "exhaustive" in n.enable_command for n in left)
    chosen, left = choose_endpoints(eps, EXHAUSTIVE.load, "exhaustive")
    assert len(chosen) == 6 and not left
    # quick: the transformer's short served point (TorchScript, REST); mlp in every format over REST, over gRPC
    # in one format per column
    both = [Endpoint(stack=stack_name("torchserve", e), server="torchserve", protocol=p, model=m, served_name="x",
                     target="http://127.0.0.1:1/", layout="NF") for m in ("mlp", "transformer")
            for e in ("torchscript", "onnx-torch", "savedmodel", "onnx-tf") for p in ("rest", "grpc")]
    chosen, left = choose_endpoints(both, QUICK.load, "quick")
    assert [(e.model, e.stack, e.protocol) for e in chosen if e.model == "transformer"] == [
        ("transformer", "torchserve/torchscript", "rest")]
    assert sorted((e.stack, e.protocol) for e in chosen if e.model == "mlp") == sorted(
        [(f"torchserve/{f}", "rest") for f in ("torchscript", "onnx-torch", "savedmodel", "onnx-tf")]
        + [("torchserve/savedmodel", "grpc"), ("torchserve/torchscript", "grpc")])
    assert len(left) == 16 - len(chosen) and any("grpc/transformer" in n.reason for n in left)


def test_the_maintenance_table_is_dated_cited_and_the_docs_hold_it():
    assert maintenance.CHECKED == "2026-12-03" and "not a measurement" in maintenance.LABEL
    assert {s.project for s in maintenance.STATUS} >= {"TorchServe", "TF Serving", "Ray Serve", "KServe"}
    assert all(s.sources and all(u.startswith("https://") for u in s.sources) for s in maintenance.STATUS)
    torchserve = next(s for s in maintenance.STATUS if s.project == "TorchServe")
    assert "limited maintenance" in torchserve.status and any("serve/issues/3396" in u for u in torchserve.sources)
    docs = (ROOT / "docs" / "servers.md").read_text(encoding="utf-8")
    assert maintenance.markdown_table() in docs, "docs/servers.md is out of step with serving/maintenance.py"
    assert f"checked on {maintenance.CHECKED}, not a measurement" in docs
