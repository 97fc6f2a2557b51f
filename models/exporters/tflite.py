"""TFLite from the TF 2.21 converter: fp32, dynamic-range int8 (weights int8, activations float) and
float16 (weights fp16). Converted from a SavedModel with the same serving signature as the SavedModel
exporter, so the `.tflite` files carry the signature `serving_default(input) -> logits` and a dynamic
batch dimension (`shape_signature` -1; the interpreter resizes the input per batch)."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deploy_compare.models.exporters.base import EXPORTERS, ArtifactRecord, Exporter, ExportJob
from deploy_compare.models.exporters.savedmodel import write_saved_model


def _fp32(converter: object, tf: object) -> None:
    pass


def _int8_dynamic(converter, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _fp16(converter, tf) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


# variant -> converter settings
VARIANTS: dict[str, Callable[[object, object], None]] = {"fp32": _fp32, "int8-dynamic": _int8_dynamic, "fp16": _fp16}


@EXPORTERS.add
class TFLiteExporter(Exporter):
    name = "tflite"
    format = "tflite"
    source_framework = "tensorflow"
    tools = ("tensorflow",)

    def export(self, job: ExportJob) -> list[ArtifactRecord]:
        import tensorflow as tf

        out = job.out_dir / "tflite"
        out.mkdir(parents=True, exist_ok=True)
        records = []
        with tempfile.TemporaryDirectory(prefix="dc-tflite-") as tmp:
            started = time.perf_counter()
            saved = write_saved_model(job.model, job.input_shape, Path(tmp) / "savedmodel", job.input_dtype)
            shared = time.perf_counter() - started  # the SavedModel step is shared by the variants
            for variant, configure in VARIANTS.items():
                t0 = time.perf_counter() - shared
                converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
                configure(converter, tf)
                path = out / f"model_{variant}.tflite"
                path.write_bytes(converter.convert())
                records.append(self.record(job, path, variant, t0))
        return records
