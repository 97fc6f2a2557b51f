"""Model archives (.mar) for TorchServe, built with torch-model-archiver's Python API from verified
artifacts of every format the handler loads (a file, or a folder such as a SavedModel), each with the
shared handler and a `signature.json`.

Each archive has a sidecar `<name>.mar.json` recording what it was built from (artifact sha256, handler
sha256, threads) and its own sha256. An archive whose sidecar matches the manifest's artifact, this
handler and these settings, and whose bytes still match the sidecar, is reused as it is: serving a
finished run reads its archives and never rewrites them; anything else is built in a store of the
command's own (`prepare_store`)."""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.core import results
from deploy_compare.models.exporters.base import digest
from deploy_compare.serving.catalog import ServedModel

HANDLER = Path(__file__).with_name("handler.py")
_ARCHIVER_LOCK = threading.Lock()  # tempfile.tempdir is process-wide: one archive at a time per process


@dataclass
class MarRecord:
    """What an archive was built from, and its own digest."""

    served_name: str
    mar_sha256: str
    artifact_sha256: str
    handler_sha256: str
    threads: int


def build_mar(model: ServedModel, store: Path, threads: int) -> Path:
    """Write `<store>/<served_name>.mar` (replacing an older one) and its sidecar; return the .mar's path."""
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import generate_model_archive

    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dc-mar-") as tmp:
        extra = Path(tmp) / "extra"  # the archiver copies this folder's entries into the archive's root
        extra.mkdir()
        (extra / "signature.json").write_text(json.dumps({
            "format": model.format, "variant": model.variant, "artifact": model.path.name, "layout": model.layout,
            "input_shape": list(model.input_shape), "dtype": model.input_dtype, "threads": threads,
            "artifact_sha256": model.sha256}))
        if model.path.is_dir():  # a folder (SavedModel) goes in as it is, under its own name
            shutil.copytree(model.path, extra / model.path.name)
        config = ModelArchiverConfig(
            model_name=model.served_name, handler=str(HANDLER), version="1.0",
            serialized_file=None if model.path.is_dir() else str(model.path), extra_files=str(extra),
            export_path=str(store), archive_format="default", force=True)
        # the archiver stages files in gettempdir()/<model name>: two archives of one served name at once (two
        # runs, or a native and a container server) would share and delete that folder, so each call gets its own
        stage = Path(tmp) / "stage"
        stage.mkdir()
        with _ARCHIVER_LOCK:
            saved, tempfile.tempdir = tempfile.tempdir, str(stage)
            try:
                generate_model_archive(config)
            finally:
                tempfile.tempdir = saved
    mar = store / f"{model.served_name}.mar"
    if not mar.is_file():
        raise RuntimeError(f"torch-model-archiver did not write {mar} for {model.served_name}")
    results.save(_expected(model, threads, mar_sha256(mar)), sidecar(mar))
    return mar


def mar_sha256(mar: Path) -> str:
    return digest(mar)[0]


def sidecar(mar: Path) -> Path:
    return mar.with_name(mar.name + ".json")


def _expected(model: ServedModel, threads: int, mar_digest: str = "") -> MarRecord:
    return MarRecord(served_name=model.served_name, mar_sha256=mar_digest, artifact_sha256=model.sha256,
                     handler_sha256=digest(HANDLER)[0], threads=threads)


def reusable(model: ServedModel, store: Path, threads: int) -> str | None:
    """The sha256 of `<store>/<served_name>.mar` if it can be served as it is for `model`, else None."""
    mar = store / f"{model.served_name}.mar"
    if not mar.is_file() or not sidecar(mar).is_file():
        return None
    recorded = results.load(MarRecord, sidecar(mar))
    if recorded != _expected(model, threads, recorded.mar_sha256) or mar_sha256(mar) != recorded.mar_sha256:
        return None
    return recorded.mar_sha256


def prepare_store(models: list[ServedModel], store: Path, threads: int,
                  published: Path | None = None) -> tuple[Path, dict[str, str]]:
    """The model store to serve `models` from and the sha256 of each archive (by served name).

    `published` is a store written by an earlier command (a finished run's): used as it is when every
    archive there is reusable, never written. Otherwise the archives go to `store`: reused there, copied
    from `published` when reusable there, built otherwise."""
    if published is not None:
        found = {m.served_name: reusable(m, published, threads) for m in models}
        if all(found.values()):
            return published, {k: v for k, v in found.items() if v}
    digests = {}
    for model in models:
        here = reusable(model, store, threads)
        if here is None and published is not None and reusable(model, published, threads):
            store.mkdir(parents=True, exist_ok=True)
            mar = published / f"{model.served_name}.mar"
            shutil.copy2(mar, store / mar.name)
            shutil.copy2(sidecar(mar), sidecar(store / mar.name))
            here = reusable(model, store, threads)
        digests[model.served_name] = here or mar_sha256(build_mar(model, store, threads))
    return store, digests
