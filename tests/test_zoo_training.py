"""The train stage end to end on the small `mlp` twin (1 epoch): files, models.json round trip, reload."""
from __future__ import annotations

import numpy as np
import pytest

from deploy_compare.core import results


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    from dataclasses import replace

    from deploy_compare.app.pipeline import RunContext, run_pipeline
    from deploy_compare.core.config import QUICK, RunConfig, TrainSettings
    from deploy_compare.core.rundir import RunDir

    profile = replace(QUICK, name="test", train=TrainSettings(twins=("mlp",), epochs=1, parity_batch=32))
    config = RunConfig(profile=profile, run_id="zoo", results_root=tmp_path_factory.mktemp("zoo"),
                       stages=("train",))
    run_dir = RunDir(config.run_dir).create()
    run_pipeline(RunContext(config=config, run_dir=run_dir))
    return run_dir


@pytest.mark.slow
def test_models_json_round_trip(mlp_run):
    from deploy_compare.models.training import TwinRecord, load_records

    (record,) = load_records(mlp_run)
    assert isinstance(record, TwinRecord) and record.twin == "mlp"
    assert record.params_keras == record.params_torch == 17226
    assert record.accuracy_torch_transplanted == record.accuracy_keras > 0.5
    assert record.transplant_max_abs_diff <= 1e-4 and record.transplant_top1_agreement == 1.0
    assert record.epochs == 1 and record.parity_samples == 32 and record.threads.torch_intra_op >= 1
    again = mlp_run.path / "again.json"
    results.save([record], again, list[TwinRecord])
    assert results.load(list[TwinRecord], again) == [record]


@pytest.mark.slow
def test_load_trained_reproduces_the_reference_logits(mlp_run):
    from deploy_compare.models.training import load_heldout, load_trained, torch_logits
    from deploy_compare.models.zoo import get_twin

    keras_model, torch_model = load_trained(mlp_run, "mlp")
    held = load_heldout(mlp_run, "mlp")
    assert held.x.shape == (32, 64) and held.x.dtype == np.float32 and held.y.dtype == np.int64
    assert held.layout == "NF" and held.output_kind == "class-logits"
    np.testing.assert_allclose(np.asarray(keras_model(held.x)), held.ref, atol=1e-5)
    np.testing.assert_allclose(torch_logits(get_twin("mlp"), torch_model, held.x), held.ref,
                               atol=1e-4)
    assert not torch_model.training


def test_load_trained_names_the_missing_file(tmp_path):
    from deploy_compare.core.rundir import RunDir
    from deploy_compare.models.training import load_heldout, load_trained

    with pytest.raises(FileNotFoundError, match="run the train stage"):
        load_trained(RunDir(tmp_path), "mlp")
    with pytest.raises(FileNotFoundError, match="run the train stage"):
        load_heldout(RunDir(tmp_path), "cnn")


def test_train_settings_are_validated():
    from deploy_compare.core.config import QUICK, TrainSettings

    assert QUICK.train.epochs_for("resnet") < QUICK.train.epochs_for("mlp") == QUICK.train.epochs
    with pytest.raises(ValueError, match=r"twin_epochs\[cnn\]=0"):
        TrainSettings(twin_epochs=(("cnn", 0),))
    with pytest.raises(ValueError, match="learning_rate"):
        TrainSettings(learning_rate=0.0)
