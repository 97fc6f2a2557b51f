"""Datasets by name, and batch layout conversion.

Every dataset is generated or loaded locally (no download at run time) and split into a training and a
held-out part fixed by the seed. Arrays are float32 in the *canonical* layout, which is the Keras layout:
`NF` (flat features) for the MLP, `NHWC` for images. PyTorch twins take `NCHW`; `to_layout` converts.

    digits-flat    scikit-learn's bundled 8x8 digits, 64 features scaled to [0, 1]     (NF,   10 classes)
    digits-image   the same digits as 8x8x1 images scaled to [0, 1]                      (NHWC, 10 classes)
    gratings32     synthetic 32x32x3 oriented gratings: class = orientation x frequency,
                   random phase, colour and noise per sample (so only oriented filters
                   separate the classes; a CNN learns it in a few epochs)                (NHWC, 10 classes)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deploy_compare.core.registry import Registry

LAYOUTS = ("NF", "NHWC", "NCHW", "tensor")
HELDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    name: str
    layout: str  # canonical layout of x_* (NF | NHWC)
    num_classes: int
    x_train: np.ndarray  # float32
    y_train: np.ndarray  # int64
    x_test: np.ndarray  # float32, the held-out split
    y_test: np.ndarray  # int64

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


DATASETS: Registry[Callable[[int], Dataset]] = Registry("dataset")


def load_dataset(name: str, seed: int) -> Dataset:
    """The dataset `name` with its held-out split fixed by `seed` (same seed -> same arrays)."""
    return DATASETS.get(name)(seed)


def to_layout(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert a batch between layouts (NHWC <-> NCHW; NF stays NF). Returns a C-contiguous array."""
    for layout in (src, dst):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; layouts are {', '.join(LAYOUTS)}")
    if src == dst:
        return np.ascontiguousarray(x)
    if "NF" in (src, dst) or "tensor" in (src, dst):
        raise ValueError(f"cannot convert a batch from {src} to {dst}: flat features have no image axes, and a "
                         "user's tensor is taken as the model takes it")
    if x.ndim != 4:
        raise ValueError(f"a {src} batch must have 4 dimensions, got shape {x.shape}")
    axes = (0, 3, 1, 2) if (src, dst) == ("NHWC", "NCHW") else (0, 2, 3, 1)
    return np.ascontiguousarray(np.transpose(x, axes))


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Stratified train/held-out split, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=HELDOUT_FRACTION, random_state=seed, stratify=y)
    return (x_tr.astype(np.float32), y_tr.astype(np.int64), x_te.astype(np.float32), y_te.astype(np.int64))


def _digits(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()  # bundled with scikit-learn: 1797 images, 8x8, values 0..16
    return _split(digits.images / 16.0, digits.target, seed)


@DATASETS.register("digits-flat")
def digits_flat(seed: int) -> Dataset:
    x_tr, y_tr, x_te, y_te = _digits(seed)
    return Dataset("digits-flat", "NF", 10, x_tr.reshape(len(x_tr), 64), y_tr, x_te.reshape(len(x_te), 64), y_te)


@DATASETS.register("digits-image")
def digits_image(seed: int) -> Dataset:
    x_tr, y_tr, x_te, y_te = _digits(seed)
    return Dataset("digits-image", "NHWC", 10, x_tr[..., None], y_tr, x_te[..., None], y_te)


GRATINGS_SAMPLES = 2000
GRATINGS_SIZE = 32
GRATINGS_ORIENTATIONS = 5
GRATINGS_FREQUENCIES = (2.0, 4.5)  # cycles per image
GRATINGS_NOISE = 1.5  # std of the additive Gaussian noise (grating amplitude is 1)


@DATASETS.register("gratings32")
def gratings32(seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    n, size = GRATINGS_SAMPLES, GRATINGS_SIZE
    num_classes = GRATINGS_ORIENTATIONS * len(GRATINGS_FREQUENCIES)
    y = np.arange(n) % num_classes  # balanced classes
    rng.shuffle(y)
    theta = (y % GRATINGS_ORIENTATIONS) * (np.pi / GRATINGS_ORIENTATIONS) + rng.normal(0.0, 0.05, n)
    freq = np.asarray(GRATINGS_FREQUENCIES)[y // GRATINGS_ORIENTATIONS] * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    grid = np.arange(size) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    proj = (np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy)
    pattern = np.sin(2 * np.pi * freq[:, None, None] * proj + phase[:, None, None])  # (n, H, W)
    colour = rng.uniform(0.3, 1.0, (n, 1, 1, 3)) * rng.choice([-1.0, 1.0], (n, 1, 1, 3))
    x = pattern[..., None] * colour + rng.normal(0.0, GRATINGS_NOISE, (n, size, size, 3))
    x_tr, y_tr, x_te, y_te = _split(x, y, seed)
    return Dataset("gratings32", "NHWC", num_classes, x_tr, y_tr, x_te, y_te)


IMAGES224_SAMPLES = (32, 16)  # (train, held-out): the untrained mobilenet twin needs only a parity batch


@DATASETS.register("images224")
def images224(seed: int) -> Dataset:
    """Smooth random 224x224x3 images (low-resolution noise upsampled), labels by the mean colour's argmax
    mod 10. For the untrained `mobilenet` twin: inputs with natural-image scale for its parity batch."""
    rng = np.random.default_rng(seed)
    n_train, n_test = IMAGES224_SAMPLES
    n = n_train + n_test
    coarse = rng.normal(0.0, 1.0, (n, 14, 14, 3)).astype(np.float32)
    x = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2) + rng.normal(0.0, 0.1, (n, 224, 224, 3))
    y = (np.argmax(x.mean(axis=(1, 2)), axis=1) + 3 * (x.mean(axis=(1, 2, 3)) > 0)) % 10
    x, y = x.astype(np.float32), y.astype(np.int64)
    return Dataset("images224", "NHWC", 10, x[:n_train], y[:n_train], x[n_train:], y[n_train:])


TOKENS_SAMPLES, TOKENS_SEQ, TOKENS_VOCAB, TOKENS_MARKS = 1000, 128, 256, 12


@DATASETS.register("tokens128")
def tokens128(seed: int) -> Dataset:
    """int64 token ids, sequence 128: random tokens from [10, 256), and the class c planted as token c at 12
    random positions (so a model must find the marker among the noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(TOKENS_SAMPLES) % 10
    rng.shuffle(y)
    x = rng.integers(10, TOKENS_VOCAB, (TOKENS_SAMPLES, TOKENS_SEQ))
    for i, label in enumerate(y):
        x[i, rng.choice(TOKENS_SEQ, TOKENS_MARKS, replace=False)] = label
    n_test = int(TOKENS_SAMPLES * HELDOUT_FRACTION)
    x, y = x.astype(np.int64), y.astype(np.int64)
    return Dataset("tokens128", "NF", 10, x[n_test:], y[n_test:], x[:n_test], y[:n_test])
