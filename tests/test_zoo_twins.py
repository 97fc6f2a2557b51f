"""Twin zoo: same architecture in both frameworks (parameter counts) and an exact weight transplant.

Untrained twins with random kernels, biases and BatchNorm parameters/statistics: a wrong
kernel layout, flatten order, padding or epsilon shows up as a logit difference.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deploy_compare.models.zoo import LayerPair, TransplantError, get_twin, param_counts, twin_names

TWINS = ["mlp", "cnn", "resnet"]


def randomized_keras(twin):
    import keras

    keras.utils.set_random_seed(0)
    model = twin.build_keras()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (w.shape for w in weights)
            weights = [rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.2, beta), rng.normal(0, 0.2, mean),
                       rng.uniform(0.5, 2.0, var)]
        else:  # kernels keep their (random, scaled) initialisation; biases become non-zero
            weights = [weights[0]] + [rng.normal(0, 0.2, w.shape) for w in weights[1:]]
        layer.set_weights([w.astype(np.float32) for w in weights])
    return model


def sample_batch(twin, n=16):
    return np.random.default_rng(1).normal(0, 1, (n, *twin.input_shape)).astype(np.float32)


def test_registry_lists_the_twins():
    assert sorted(twin_names()) == sorted([*TWINS, "mobilenet", "transformer"])  # + the computing twins
    with pytest.raises(KeyError, match="registered: cnn, mlp, mobilenet, resnet, transformer"):
        get_twin("vit")


@pytest.mark.parametrize("name", TWINS)
def test_parameter_counts_match(name):
    twin = get_twin(name)
    keras_model, torch_model = twin.build_keras(), twin.build_torch()
    keras_count, torch_count = param_counts(keras_model, torch_model)
    assert keras_count == torch_count
    trainable_keras = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert trainable_keras == sum(p.numel() for p in torch_model.parameters())
    assert tuple(keras_model.input_shape[1:]) == twin.input_shape
    assert keras_model.output_shape[-1] == twin.num_classes


@pytest.mark.parametrize("name", TWINS)
def test_transplant_is_exact(name):
    from deploy_compare.models.training import check_transplant, torch_logits

    twin = get_twin(name)
    keras_model, torch_model = randomized_keras(twin), twin.build_torch()
    twin.transplant(keras_model, torch_model)
    x = sample_batch(twin)
    diff, agree = check_transplant(twin, keras_model, torch_model, x)
    assert diff <= 1e-4 and agree == 1.0
    assert not torch_model.training
    # the logits are not trivially equal (e.g. all zero): a real function was copied
    assert np.std(torch_logits(twin, torch_model, x)) > 1e-2


def test_wrong_flatten_order_is_caught():
    """Dropping the (h, w, c) -> (c, h, w) row permutation changes the function: the check must fail."""
    from deploy_compare.models.training import check_transplant

    twin = get_twin("cnn")
    wrong = [replace(p, flatten_hwc=None) for p in twin.weight_map()]
    twin.weight_map = lambda: wrong  # type: ignore[method-assign]
    keras_model, torch_model = randomized_keras(twin), twin.build_torch()
    twin.transplant(keras_model, torch_model)
    with pytest.raises(TransplantError, match="max abs logit difference"):
        check_transplant(twin, keras_model, torch_model, sample_batch(twin))


def test_incomplete_weight_map_is_refused():
    twin = get_twin("mlp")
    partial = twin.weight_map()[:-1]
    twin.weight_map = lambda: partial  # type: ignore[method-assign]
    with pytest.raises(TransplantError, match="not covered by weight_map"):
        twin.transplant(twin.build_keras(), twin.build_torch())


def test_mismatched_module_is_refused():
    twin = get_twin("mlp")
    twin.weight_map = lambda: [LayerPair("fc1", "fc2")]  # type: ignore[method-assign]
    with pytest.raises(TransplantError, match="shape mismatch"):
        twin.transplant(twin.build_keras(), twin.build_torch())
