"""SavedModel with a named serving signature: `serving_default(input: <dtype>[None, ...]) -> {logits}`
(float32, or the integer ids of a token model).

Written with Keras 3's `keras.export.ExportArchive` (the supported way to export a Keras 3 model to a
TF SavedModel): the model's variables are tracked and one endpoint is added whose input is named and
whose batch dimension is dynamic. TF Serving and `tf.saved_model.load` both call it by name.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from deploy_compare.models.exporters.base import EXPORTERS, INPUT_NAME, OUTPUT_NAME, ArtifactRecord, Exporter, ExportJob

SIGNATURE = "serving_default"


def input_signature(input_shape: tuple[int, ...], dtype: str = "float32") -> list:
    import tensorflow as tf

    return [tf.TensorSpec((None, *input_shape), tf.as_dtype(dtype), name=INPUT_NAME)]


def serving_fn(model: object):
    """The function every TensorFlow export calls: inference mode, one named output."""
    return lambda x: {OUTPUT_NAME: model(x, training=False)}


def write_saved_model(model: object, input_shape: tuple[int, ...], path: Path, dtype: str = "float32") -> Path:
    import keras

    if path.exists():
        shutil.rmtree(path)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=serving_fn(model), input_signature=input_signature(input_shape, dtype))
    archive.write_out(str(path), verbose=False)
    return path


@EXPORTERS.add
class SavedModelExporter(Exporter):
    name = "savedmodel"
    format = "savedmodel"
    source_framework = "tensorflow"
    tools = ("tensorflow", "keras")

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        started = time.perf_counter()
        path = write_saved_model(job.model, job.input_shape, job.out_dir / "savedmodel", job.input_dtype)
        return [self.record(job, path, "fp32", started, notes=f"signature {SIGNATURE}")]
