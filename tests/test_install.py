"""A non-editable install (`pip install .`): one namespace in site-packages, with the data files the installed copy
reads at run time (report template, vendored TF Serving protos, TorchServe Dockerfile)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_report_golden import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "core", "deploy_compare", "models", "serving", "loadtests")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install --no-deps .` of a copy of the sources (the build writes into its source folder) into an empty
    target folder; the dependencies stay those of the running environment."""
    tmp = tmp_path_factory.mktemp("install")
    src, target = tmp / "src", tmp / "site"
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__", "_generated")}
                                         if (ROOT / name).is_dir() else {}))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-compile", "--disable-pip-version-check", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def run_installed(target: Path, code: str, tmp_path: Path, *, isolated: bool = False) -> subprocess.CompletedProcess:
    """Python code run against the installed copy: `isolated` = with nothing but the standard library and it."""
    env = {**os.environ, "PYTHONPATH": str(target), "DEPLOY_COMPARE_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, *(["-S"] if isolated else []), "-c", code]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_only_deploy_compare_is_installed(installed, tmp_path):
    assert sorted(p.name for p in installed.iterdir()) == ["bin", "deploy_compare", "deploy_compare-0.1.0.dist-info"]
    assert sorted(p.name for p in (installed / "bin").iterdir()) == ["deploy-compare"]
    assert sorted(p.name for p in (installed / "deploy_compare").iterdir() if p.is_dir()) == [
        "app", "core", "loadtests", "models", "serving"]
    for layer in ("models", "core", "serving", "loadtests", "app"):
        proc = run_installed(installed, f"import {layer}", tmp_path, isolated=True)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, layer
    data = [p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file() and p.suffix != ".py"]
    assert {"deploy_compare/app/report/templates/report.html.j2", "deploy_compare/serving/torchserve/Dockerfile",
            "deploy_compare/serving/tfserving/proto/LICENSE",
            "deploy_compare/serving/tfserving/proto/tensorflow_serving/config/monitoring_config.proto",
            "deploy_compare/serving/tfserving/proto/tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
            } <= set(data)
    assert {"deploy_compare/loadtests/locustfiles/rest.py", "deploy_compare/serving/torchserve/handler.py"} <= {
        p.relative_to(installed).as_posix() for p in installed.rglob("*.py")}


def test_installed_copy_runs_from_its_own_files(installed, tmp_path):
    """The console script and `python -m`, the report (its template), TF Serving's protos and TorchServe's stubs
    (compiled into the cache folder, not the read-only package)."""
    script = (installed / "bin" / "deploy-compare").read_text(encoding="utf-8")
    assert "from deploy_compare.app.cli import main" in script
    code = ("import sys, deploy_compare\n"
            f"assert deploy_compare.__file__.startswith({str(installed)!r}), deploy_compare.__file__\n"
            "from deploy_compare.app import cli\n"
            "sys.argv = ['deploy-compare', 'report', sys.argv[1], '--quiet']\n"
            "assert cli.main() == 0\n"
            "from deploy_compare.serving.tfserving import config\n"
            "assert 'prometheus_config' in config.monitoring_config()\n"
            "from deploy_compare.serving import grpc_stubs\n"
            "pb, _ = grpc_stubs.load()\n"
            f"assert not pb.__file__.startswith({str(installed)!r}), pb.__file__\n")
    shutil.copytree(FIXTURES / "run", tmp_path / "run")
    before = sorted(installed.rglob("*"))
    env = {**os.environ, "PYTHONPATH": str(installed), "DEPLOY_COMPARE_CACHE": str(tmp_path / "cache"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code.replace("sys.argv[1]", repr(str(tmp_path / "run")))],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "load_points.csv").is_file()
    helped = subprocess.run([sys.executable, "-m", "deploy_compare.app.cli", "--help"], capture_output=True,
                            text=True, timeout=120, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "usage: deploy-compare" in helped.stdout
    assert sorted(installed.rglob("*")) == before  # nothing was written into the package
