"""The `train` stage: train each twin in both frameworks, transplant the Keras weights into PyTorch, save.

Per twin (settings: `profile.train`):
1. Keras: `compile` + `fit` (Adam, sparse cross-entropy from logits), the idiomatic Keras way.
2. PyTorch: a plain training loop (Adam, cross-entropy), same epochs, batch size, rate and threads.
   Held-out accuracy of both is recorded: evidence that each framework trains the architecture on its own.
3. Transplant: the Keras-trained weights are copied into a fresh PyTorch twin (`Twin.transplant`) and both
   are compared on the whole held-out split: max abs logit difference <= TRANSPLANT_TOLERANCE and 100% top-1
   agreement, or the stage fails with the figures.
4. Saved under `run_dir.twin_dir(twin)`: `keras.keras` (the reference) and `torch.pt` (transplanted state
   dict); `run_dir.heldout(twin)`: the parity batch = the first `parity_batch` samples of the held-out split
   (the split is shuffled by the seed, so this is a fixed, class-mixed subset) with the Keras logits;
   `models.json`: one TwinRecord per twin.

Threads: both frameworks train with `profile.train.threads` (default 1, recorded per twin). On this shared
2-core machine, 2 OpenMP threads made PyTorch training 6-14x slower whenever other processes kept the cores
busy (spin-waiting threads); one thread is robust, and the twins are small enough not to need more.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploy_compare.core import results
from deploy_compare.core.config import TrainSettings
from deploy_compare.core.rundir import RunDir
from deploy_compare.models.data import Dataset, load_dataset, to_layout
from deploy_compare.models.flops import count_flops
from deploy_compare.models.heldout import HeldoutBatch, load_batch
from deploy_compare.models.zoo import TransplantError, Twin, get_twin, param_counts

if TYPE_CHECKING:
    from rich.progress import Progress

    from deploy_compare.core.context import RunContext

TRANSPLANT_TOLERANCE = 1e-4
KERAS_FILE = "keras.keras"
TORCH_FILE = "torch.pt"
EVAL_BATCH = 256


@dataclass
class TrainThreads:
    tf_intra_op: int
    tf_inter_op: int
    torch_intra_op: int
    note: str = ""


@dataclass
class TwinRecord:
    twin: str
    dataset: str
    input_shape: list[int]  # per sample, canonical (Keras) layout
    keras_layout: str
    torch_layout: str
    num_classes: int
    params_keras: int  # trainable + BatchNorm running statistics
    params_torch: int  # parameters + float buffers (BatchNorm running statistics)
    train_samples: int
    heldout_samples: int
    parity_samples: int  # size of the held-out npz batch
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    threads: TrainThreads
    accuracy_keras: float  # on the whole held-out split
    accuracy_torch_native: float  # the PyTorch twin trained by its own loop
    accuracy_torch_transplanted: float  # the PyTorch twin holding the Keras weights
    train_seconds_keras: float  # wall time of fit(), including its tf.function tracing
    train_seconds_torch: float  # wall time of the training loop
    transplant_max_abs_diff: float  # Keras vs transplanted PyTorch logits, whole held-out split
    transplant_top1_agreement: float
    keras_path: str  # relative to the run folder
    torch_path: str
    heldout_path: str
    flops: int | None = None  # per inference at batch 1 (models/flops.py: torch's FlopCounterMode)
    untrained: str = ""  # why the twin keeps its seeded initial weights ("" = trained as above)


def configure_threads(n: int, console: Any | None = None) -> TrainThreads:
    """Set TF intra/inter-op and PyTorch thread counts; return what is actually in effect.

    TensorFlow accepts thread settings only before its runtime starts; if it already started in this
    process (e.g. an earlier test), the settings in effect are recorded and a warning is printed.
    """
    import tensorflow as tf
    import torch

    note = ""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError as exc:
        note = f"TensorFlow runtime already initialised, thread settings unchanged ({exc})"
        if console is not None:
            console.print(f"[yellow]warning:[/] {note}")
    torch.set_num_threads(n)
    return TrainThreads(tf_intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
                        tf_inter_op=tf.config.threading.get_inter_op_parallelism_threads(),
                        torch_intra_op=torch.get_num_threads(), note=note)


def keras_logits(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=EVAL_BATCH, verbose=0), dtype=np.float32)


def torch_logits(twin: Twin, model: Any, x: np.ndarray) -> np.ndarray:
    """Logits of a PyTorch twin (eval mode) for a batch `x` in the canonical layout."""
    import torch

    model.eval()
    xt = to_layout(x, twin.keras_layout, twin.torch_layout)
    with torch.inference_mode():
        out = [model(torch.from_numpy(xt[i:i + EVAL_BATCH])) for i in range(0, len(xt), EVAL_BATCH)]
    return torch.cat(out).numpy().astype(np.float32)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == y))


def train_keras(twin: Twin, data: Dataset, settings: TrainSettings, progress: Progress) -> tuple[Any, float]:
    import keras

    epochs = settings.epochs_for(twin.name)
    keras.utils.set_random_seed(settings.seed)
    model = twin.build_keras()
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    task = progress.add_task(f"{twin.name} keras fit", total=epochs)

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        progress.update(task, advance=1, description=f"{twin.name} keras fit   loss {logs['loss']:.3f}")

    t0 = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=settings.batch_size, epochs=epochs, shuffle=True,
              verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])
    return model, time.perf_counter() - t0


def train_torch(twin: Twin, data: Dataset, settings: TrainSettings, progress: Progress) -> tuple[Any, float]:
    import torch

    epochs = settings.epochs_for(twin.name)
    torch.manual_seed(settings.seed)
    model = twin.build_torch()
    x = torch.from_numpy(to_layout(data.x_train, twin.keras_layout, twin.torch_layout))
    y = torch.from_numpy(data.y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(settings.seed)
    task = progress.add_task(f"{twin.name} torch loop", total=epochs)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(x), settings.batch_size):
            idx = order[start:start + settings.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        progress.update(task, advance=1, description=f"{twin.name} torch loop  loss {total / batches:.3f}")
    seconds = time.perf_counter() - t0
    model.eval()
    return model, seconds


def check_transplant(twin: Twin, keras_model: Any, torch_model: Any, x: np.ndarray,
                     ref_logits: np.ndarray | None = None) -> tuple[float, float]:
    """(max abs logit difference, top-1 agreement) of Keras vs transplanted PyTorch on `x`; raises
    TransplantError beyond TRANSPLANT_TOLERANCE or below 100% agreement."""
    ref = keras_logits(keras_model, x) if ref_logits is None else ref_logits
    got = torch_logits(twin, torch_model, x)
    diff = float(np.max(np.abs(ref - got)))
    agree = float(np.mean(np.argmax(ref, axis=1) == np.argmax(got, axis=1)))
    if not diff <= TRANSPLANT_TOLERANCE or agree < 1.0:
        raise TransplantError(
            f"twin {twin.name!r}: the transplanted PyTorch model does not compute the Keras function on "
            f"{len(x)} held-out samples: max abs logit difference {diff:.3g} (limit {TRANSPLANT_TOLERANCE:g}), "
            f"top-1 agreement {agree:.2%} (need 100%). Check {type(twin).__name__}.weight_map() and the "
            "layer definitions (padding, flatten order, BatchNorm epsilon).")
    return diff, agree


def train_twin(name: str, settings: TrainSettings, run_dir: RunDir, threads: TrainThreads,
               progress: Progress) -> TwinRecord:
    """Train, transplant, check and save one twin; return its record."""
    import torch

    twin = get_twin(name)
    data = load_dataset(twin.dataset, settings.seed)
    if data.input_shape != twin.input_shape:
        raise ValueError(f"twin {name!r} expects inputs {twin.input_shape}, dataset {data.name!r} gives "
                         f"{data.input_shape}")
    if twin.untrained:  # seeded initial weights in both frameworks, transplanted and checked like trained ones
        import keras

        keras.utils.set_random_seed(settings.seed)
        torch.manual_seed(settings.seed)
        keras_model, keras_seconds, torch_native, torch_seconds = twin.build_keras(), 0.0, twin.build_torch(), 0.0
        torch_native.eval()
    else:
        keras_model, keras_seconds = train_keras(twin, data, settings, progress)
        torch_native, torch_seconds = train_torch(twin, data, settings, progress)

    transplanted = twin.build_torch()
    twin.transplant(keras_model, transplanted)
    ref = keras_logits(keras_model, data.x_test)
    diff, agree = check_transplant(twin, keras_model, transplanted, data.x_test, ref_logits=ref)
    params_keras, params_torch = param_counts(keras_model, transplanted)
    if params_keras != params_torch:
        raise TransplantError(f"twin {name!r}: parameter counts differ (Keras {params_keras}, PyTorch "
                              f"{params_torch}); the twins' architectures differ")

    out = run_dir.twin_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    keras_model.save(out / KERAS_FILE)
    torch.save(transplanted.state_dict(), out / TORCH_FILE)
    n_parity = min(settings.parity_batch, len(data.x_test))
    heldout = run_dir.heldout(name)
    HeldoutBatch(x=data.x_test[:n_parity], ref=ref[:n_parity], layout=twin.keras_layout,
                 y=data.y_test[:n_parity]).save(heldout)

    return TwinRecord(
        twin=name, dataset=data.name, input_shape=list(twin.input_shape), keras_layout=twin.keras_layout,
        torch_layout=twin.torch_layout, num_classes=twin.num_classes, params_keras=params_keras,
        params_torch=params_torch, train_samples=len(data.x_train), heldout_samples=len(data.x_test),
        parity_samples=n_parity, epochs=0 if twin.untrained else settings.epochs_for(name),
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, seed=settings.seed, threads=threads,
        accuracy_keras=accuracy(ref, data.y_test),
        accuracy_torch_native=accuracy(torch_logits(twin, torch_native, data.x_test), data.y_test),
        accuracy_torch_transplanted=accuracy(torch_logits(twin, transplanted, data.x_test), data.y_test),
        train_seconds_keras=keras_seconds, train_seconds_torch=torch_seconds,
        transplant_max_abs_diff=diff, transplant_top1_agreement=agree,
        keras_path=_relative(out / KERAS_FILE, run_dir), torch_path=_relative(out / TORCH_FILE, run_dir),
        heldout_path=_relative(heldout, run_dir),
        flops=count_flops(transplanted, to_layout(data.x_test[:1], twin.keras_layout, twin.torch_layout)),
        untrained=twin.untrained)


def _relative(path: Path, run_dir: RunDir) -> str:
    return str(path.relative_to(run_dir.path))


def run_stage(ctx: RunContext) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    settings = ctx.config.profile.train
    threads = configure_threads(settings.threads, ctx.console)
    records: list[TwinRecord] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
               TimeElapsedColumn())
    with Progress(*columns, console=ctx.console) as progress:
        for name in settings.twins:
            records.append(train_twin(name, settings, ctx.run_dir, threads, progress))
            results.save(records, ctx.run_dir.models, list[TwinRecord])

    table = Table(title="twins: held-out accuracy (k = Keras, t = PyTorch own loop, t<-k = transplanted)")
    for col in ("twin", "params", "MFLOPs", "epochs", "acc k", "acc t", "acc t<-k", "max|diff|", "train s k/t"):
        table.add_column(col, no_wrap=True)
    for r in records:
        table.add_row(r.twin, str(r.params_keras), f"{(r.flops or 0) / 1e6:.1f}",
                      "untrained" if r.untrained else str(r.epochs), f"{r.accuracy_keras:.3f}",
                      f"{r.accuracy_torch_native:.3f}", f"{r.accuracy_torch_transplanted:.3f}",
                      f"{r.transplant_max_abs_diff:.1e}",
                      f"{r.train_seconds_keras:.1f} / {r.train_seconds_torch:.1f}")
    ctx.console.print(table)


def load_records(run_dir: RunDir) -> list[TwinRecord]:
    return results.load(list[TwinRecord], run_dir.models)


def load_trained(run_dir: RunDir, twin_name: str) -> tuple[Any, Any]:
    """(Keras reference model, PyTorch twin holding the transplanted Keras weights, eval mode)."""
    import keras
    import torch

    twin = get_twin(twin_name)
    folder = run_dir.twin_dir(twin_name)
    for path in (folder / KERAS_FILE, folder / TORCH_FILE):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run the train stage for twin {twin_name!r} first")
    keras_model = keras.models.load_model(folder / KERAS_FILE, custom_objects=twin.keras_objects())
    torch_model = twin.build_torch()
    torch_model.load_state_dict(torch.load(folder / TORCH_FILE, weights_only=True))
    torch_model.eval()
    return keras_model, torch_model


def load_heldout(run_dir: RunDir, name: str) -> HeldoutBatch:
    """The parity batch of a twin or a user's model (deploy_compare.models.heldout)."""
    return load_batch(run_dir.heldout(name), name)
