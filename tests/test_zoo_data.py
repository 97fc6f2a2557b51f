"""Datasets (deterministic held-out split) and layout conversion."""
from __future__ import annotations

import numpy as np
import pytest

from deploy_compare.models.data import DATASETS, load_dataset, to_layout
from deploy_compare.models.zoo import get_twin

COMPUTE_DATASETS = ("images224", "tokens128")  # the computing twins' generated data (models/zoo/mobilenet.py, ...)


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n not in COMPUTE_DATASETS])
def test_split_is_fixed_by_seed(name):
    a, b, c = load_dataset(name, 7), load_dataset(name, 7), load_dataset(name, 8)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_test, c.y_test)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert len(a.x_test) == pytest.approx(0.2 * (len(a.x_train) + len(a.x_test)), abs=1)
    assert set(np.unique(a.y_test)) == set(range(a.num_classes))  # stratified: every class held out


@pytest.mark.parametrize("name", COMPUTE_DATASETS)
def test_compute_datasets_are_fixed_by_seed_and_fit_their_twins(name):
    a, b = load_dataset(name, 7), load_dataset(name, 7)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    twin = get_twin({"images224": "mobilenet", "tokens128": "transformer"}[name])
    assert a.input_shape == twin.input_shape and a.x_train.dtype == np.dtype(twin.input_dtype)
    assert a.y_train.dtype == np.int64 and set(np.unique(a.y_train)) <= set(range(twin.num_classes))


def test_digits_shapes_and_scale():
    flat, image = load_dataset("digits-flat", 1), load_dataset("digits-image", 1)
    assert flat.x_train.shape == (1437, 64) and image.x_train.shape == (1437, 8, 8, 1)
    np.testing.assert_array_equal(flat.x_test, image.x_test.reshape(len(image.x_test), 64))
    assert 0.0 <= flat.x_train.min() and flat.x_train.max() <= 1.0


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_twin_matches_its_dataset(name):
    twin = get_twin(name)
    data = load_dataset(twin.dataset, 0)
    assert data.input_shape == twin.input_shape and data.layout == twin.keras_layout
    assert data.num_classes == twin.num_classes


def test_to_layout_round_trip():
    x = np.arange(2 * 4 * 3 * 5, dtype=np.float32).reshape(2, 4, 3, 5)  # NHWC: h=4, w=3, c=5
    nchw = to_layout(x, "NHWC", "NCHW")
    assert nchw.shape == (2, 5, 4, 3) and nchw.flags.c_contiguous
    assert nchw[1, 2, 3, 0] == x[1, 3, 0, 2]
    np.testing.assert_array_equal(to_layout(nchw, "NCHW", "NHWC"), x)
    np.testing.assert_array_equal(to_layout(x, "NHWC", "NHWC"), x)


def test_to_layout_refuses_impossible_conversions():
    with pytest.raises(ValueError, match="flat features"):
        to_layout(np.zeros((2, 64), np.float32), "NF", "NCHW")
    with pytest.raises(ValueError, match="unknown layout"):
        to_layout(np.zeros((2, 64), np.float32), "NF", "NWHC")
