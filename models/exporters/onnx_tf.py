"""ONNX from TensorFlow with tf2onnx (`tf2onnx.convert.from_function`), opset 18, NHWC kept.

tf2onnx 1.17 predates TF 2.21 and Keras 3; it converts the same serving function the SavedModel
exporter writes (a `tf.function` with a named, batch-dynamic input). It is `optional`: if the
converter fails on this TF version, the manifest holds a NotRun with the real error instead.
tf2onnx names the graph output after the TF tensor (`Identity:0`); it is renamed to `logits`.
"""
from __future__ import annotations

import time

from deploy_compare.models.exporters.base import EXPORTERS, OUTPUT_NAME, ArtifactRecord, Exporter, ExportJob
from deploy_compare.models.exporters.savedmodel import input_signature, serving_fn

OPSET = 18


def rename_output(model_proto: object, old: str, new: str) -> None:
    for node in model_proto.graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]
    for value in model_proto.graph.output:
        if value.name == old:
            value.name = new


@EXPORTERS.add
class OnnxFromTensorFlowExporter(Exporter):
    name = "onnx-tf"
    format = "onnx"
    source_framework = "tensorflow"
    tools = ("tensorflow", "tf2onnx", "onnx")
    optional = True
    enable_command = ".venv/bin/pip install 'tf2onnx>=1.17' (a release that supports TensorFlow 2.21)"

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import onnx
        import tensorflow as tf
        import tf2onnx

        started = time.perf_counter()
        fn = tf.function(serving_fn(job.model))
        signature = input_signature(job.input_shape, job.input_dtype)
        model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=OPSET)
        outputs = [o.name for o in model_proto.graph.output]
        if len(outputs) != 1:
            raise RuntimeError(f"tf2onnx produced {len(outputs)} outputs {outputs}; expected one")
        rename_output(model_proto, outputs[0], OUTPUT_NAME)
        out = job.out_dir / "onnx"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model_tf.onnx"
        onnx.save(model_proto, str(path))
        return [self.record(job, path, "fp32", started, notes=f"tf2onnx.convert.from_function, opset {OPSET}")]
