"""`deploy-compare run --model`: a user's own model (built here, a few kB) through the pipeline.

Each kind runs model -> export -> parity -> report (seconds to a minute); the PyTorch module also runs the
serve stage on the real TorchServe (served parity and the sequential probe). One failing model: one
paragraph, exit code 2, no process left.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests import byom_models

CLI = [sys.executable, "-m", "deploy_compare.app.cli"]
SPINE = ["train", "export", "parity", "report"]


def run_model(tmp_path: Path, model: str, *extra: str, stages=SPINE, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([*CLI, "run", "--model", model, *extra, "--run-id", "byom", "--results-dir",
                           str(tmp_path / "results"), "--stages", *stages], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp_path)


def check_run(tmp_path: Path, proc: subprocess.CompletedProcess, name: str, formats: set[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "results" / "byom"
    subject = json.loads((run / "subject.json").read_text())
    assert subject["name"] == name
    parity = json.loads((run / "parity.json").read_text())
    assert {row["format"] for row in parity["rows"]} == formats
    for row in parity["rows"]:
        assert not row["error"] and row["figures"]["passed"], row
        if row["variant"] == "fp32":  # gated, with the tolerance this output was held to
            assert row["figures"]["gated"] and row["figures"]["tolerance"]["max_rel"] == pytest.approx(1e-5)
    not_run = json.loads((run / "manifest.json").read_text())["not_run"]
    assert all(nr["reason"] for nr in not_run)  # what could not be reached says why
    report = (run / "report.md").read_text()
    assert report.startswith(f"# deploy-compare: {name}, deployed")
    return subject


@pytest.mark.slow
def test_keras_model(tmp_path):
    proc = run_model(tmp_path, byom_models.keras_file(tmp_path))
    subject = check_run(tmp_path, proc, "tiny", {"savedmodel", "tflite", "onnx"})
    assert subject["input_source"] == "the model's signature" and subject["input_shape"] == [12]
    assert subject["output_kind"] == "class-logits" and "seeded random" in subject["sample_origin"]
    assert "pytorch" in subject["unreachable"]


@pytest.mark.slow
def test_savedmodel_folder(tmp_path):
    proc = run_model(tmp_path, byom_models.savedmodel_folder(tmp_path), "--output-kind", "regression")
    subject = check_run(tmp_path, proc, "tiny_sm", {"savedmodel", "tflite", "onnx"})
    assert subject["output_kind"] == "regression"
    parity = json.loads((tmp_path / "results/byom/parity.json").read_text())
    assert all(row["figures"]["top1_agreement"] is None for row in parity["rows"])  # no top-1 for regression


@pytest.mark.slow
def test_torch_program(tmp_path):
    check_run(tmp_path, run_model(tmp_path, byom_models.torch_program(tmp_path)), "tiny",
              {"torchscript", "onnx", "torch-export", "aoti"})


@pytest.mark.slow
def test_onnx_file_with_a_sample(tmp_path):
    import numpy as np

    sample = tmp_path / "sample.npy"
    np.save(sample, np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32))
    proc = run_model(tmp_path, byom_models.onnx_file(tmp_path), "--sample", str(sample))
    subject = check_run(tmp_path, proc, "tiny", {"onnx"})
    assert subject["sample_origin"].startswith("the user's sample") and subject["samples"] == 8


@pytest.mark.slow
@pytest.mark.integration
def test_torch_module_is_served_by_torchserve(tmp_path):
    """module:factory without a signature: --input-shape; served parity on TorchServe, then the report."""
    model = byom_models.torch_factory(tmp_path)
    proc = run_model(tmp_path, model, "--input-shape", "3", "8", "8",
                     stages=["train", "export", "parity", "serve", "report"], timeout=900)
    check_run(tmp_path, proc, "tiny_user_model-build", {"torchscript", "onnx", "torch-export", "aoti"})
    serving = json.loads((tmp_path / "results/byom/serving.json").read_text())
    (torchserve,) = [s for s in serving["servers"] if s["server"] == "torchserve"]
    assert torchserve["timed"] and {p["served_name"] for p in torchserve["parity"]} == {
        "tiny_user_model-build-torchscript", "tiny_user_model-build-onnx-torch", "tiny_user_model-build-torch-export",
        "tiny_user_model-build-aoti"}
    assert all(p["figures"]["passed"] for p in torchserve["parity"])
    assert "| torchserve/torchscript rest" in (tmp_path / "results/byom/report.md").read_text()


@pytest.mark.slow
def test_wrong_input_spec_fails_in_one_paragraph_leaving_nothing(tmp_path):
    model = byom_models.torch_factory(tmp_path)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    proc = run_model(tmp_path, model, "--input-shape", "5", "8", "8", stages=["train", "export", "parity", "serve"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = [line for line in proc.stderr.splitlines() if line.startswith("deploy-compare run:")]
    assert len(message) == 1 and "failed on inputs float32[batch, 5, 8, 8]" in message[0]
    assert "--input-shape" in message[0] and "Traceback" not in proc.stderr
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
    assert not (tmp_path / "results/byom/manifest.json").exists()


def test_a_path_no_kind_reads_is_refused_with_the_kinds(tmp_path):
    proc = run_model(tmp_path, str(tmp_path / "missing.bin"), stages=["train"], timeout=120)
    assert proc.returncode == 2
    assert "not a model this toolkit reads" in proc.stderr and "a Keras model file (.keras)" in proc.stderr
