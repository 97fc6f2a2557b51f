"""Fast checks of the export additions: the converters' venv cache and AOTI's row-major input. (The export scope,
`ExportSettings.exclude`, is checked on the real spine run: tests/test_export_artifacts.py.)"""
from __future__ import annotations

import json

import numpy as np


def test_venv_key_follows_the_pins_and_a_ready_venv_is_reused_without_running_anything(tmp_path, monkeypatch):
    from deploy_compare.models.venvs import READY, VenvSpec, ensure

    monkeypatch.setenv("DEPLOY_COMPARE_CACHE", str(tmp_path))
    spec = VenvSpec("tool", ("tool==1.0",))
    assert spec.key() != VenvSpec("tool", ("tool==1.1",)).key()
    assert spec.key() == VenvSpec("tool", ("tool==1.0",)).key()
    folder = tmp_path / "venvs" / spec.key()
    folder.mkdir(parents=True)
    (folder / READY).write_text(json.dumps({"requirements": ["tool==1.0"], "seconds": 12.5}))
    venv = ensure(spec, timeout_s=0.001, log_dir=tmp_path / "logs")  # no time to create: must come from the cache
    assert venv.cached and venv.created_seconds == 12.5 and venv.python == folder / "bin" / "python"


def test_a_venv_that_cannot_be_made_in_time_fails_and_leaves_nothing(tmp_path, monkeypatch):
    import pytest

    from deploy_compare.models.venvs import VenvFailed, VenvSpec, ensure

    monkeypatch.setenv("DEPLOY_COMPARE_CACHE", str(tmp_path))
    with pytest.raises(VenvFailed, match="no time left|did not finish"):
        ensure(VenvSpec("slow", ("x==1",)), timeout_s=1e-9, log_dir=tmp_path / "logs")
    assert not list(tmp_path.glob("venvs/*"))  # neither a partial venv nor a cache entry


def test_row_major_fixes_the_strides_numpy_calls_contiguous():
    from deploy_compare.models.runtimes.aoti import row_major

    nhwc = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    nchw = nhwc.transpose(0, 3, 1, 2)  # 1 channel: NumPy calls it C-contiguous, its strides say otherwise
    assert nchw.flags.c_contiguous and nchw.strides != (64, 64, 16, 4)
    fixed = row_major(nchw)
    assert fixed.strides == (64, 64, 16, 4) and np.array_equal(fixed, nchw)
    plain = np.zeros((3, 5), np.float32)
    assert row_major(plain) is plain  # no copy when the strides are already row-major
