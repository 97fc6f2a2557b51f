"""Tiny user models for `deploy-compare run --model` tests, one builder per kind (each a few kB)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def keras_file(folder: Path) -> str:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,), name="features")
    x = keras.layers.Dense(16, activation="relu")(inputs)
    keras.Model(inputs, keras.layers.Dense(4)(x)).save(folder / "tiny.keras")
    return str(folder / "tiny.keras")


def savedmodel_folder(folder: Path) -> str:
    import tensorflow as tf

    class Scores(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.stateless_normal((12, 3), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([None, 12], tf.float32, name="features")])
        def serve(self, features):
            return {"scores": tf.matmul(features, self.w)}

    module = Scores()
    tf.saved_model.save(module, str(folder / "tiny_sm"), signatures={"serving_default": module.serve})
    return str(folder / "tiny_sm")


FACTORY_SOURCE = '''
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def build():
    torch.manual_seed(0)
    return Tiny()
'''


def torch_factory(folder: Path) -> str:
    """`tiny_user_model:build` importable from `folder` (the test puts it on PYTHONPATH)."""
    (folder / "tiny_user_model.py").write_text(FACTORY_SOURCE)
    return "tiny_user_model:build"


def _tiny_module(folder: Path):
    sys.path.insert(0, str(folder))
    try:
        torch_factory(folder)
        import tiny_user_model

        return tiny_user_model.build().eval()
    finally:
        sys.path.remove(str(folder))


def torch_program(folder: Path) -> str:
    import torch

    module = _tiny_module(folder)
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.rand(2, 3, 8, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, folder / "tiny.pt2")
    return str(folder / "tiny.pt2")


def onnx_file(folder: Path) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, folder / "tiny.onnx")
    return str(folder / "tiny.onnx")
