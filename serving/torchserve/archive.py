"""Model archives (.mar) for TorchServe, built with torch-model-archiver's Python API from verified
TorchScript and ONNX artifacts, each with the shared handler and a `signature.json`."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from models.exporters.base import digest
from serving.catalog import ServedModel

HANDLER = Path(__file__).with_name("handler.py")


def build_mar(model: ServedModel, store: Path, threads: int) -> Path:
    """Write `<store>/<served_name>.mar` (replacing an older one) and return its path."""
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import generate_model_archive

    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dc-mar-") as tmp:
        signature = Path(tmp) / "signature.json"
        signature.write_text(json.dumps({
            "format": model.format, "layout": model.layout, "input_shape": list(model.input_shape),
            "dtype": model.input_dtype, "threads": threads, "artifact_sha256": model.sha256}))
        config = ModelArchiverConfig(
            model_name=model.served_name, handler=str(HANDLER), version="1.0", serialized_file=str(model.path),
            extra_files=str(signature), export_path=str(store), archive_format="default", force=True)
        generate_model_archive(config)
    mar = store / f"{model.served_name}.mar"
    if not mar.is_file():
        raise RuntimeError(f"torch-model-archiver did not write {mar} for {model.served_name}")
    return mar


def mar_sha256(mar: Path) -> str:
    return digest(mar)[0]
