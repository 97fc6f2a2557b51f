"""The model stage of `deploy-compare run --model`: it takes the train stage's place (no training, no twins).

1. The model is read by its kind (`open_subject`) and loaded.
2. Its input: the model's own signature where it declares one; else `--input-shape`/`--input-dtype`; else
   the per-sample shape and dtype of `--sample`. Given options that contradict the signature are refused.
3. The reference batch: the rows of `--sample`, or seeded random inputs (floats ~ U[0, 1); integer ids
   in [0, 2): recorded as such), and the model's own outputs on it -> `run_dir.heldout(name)` with the
   output kind (given, or guessed from the output's shape) and the gate's relative tolerance.
4. `subject.json`: what was learnt (SubjectRecord).

Anything that fails (the file, the input spec, an op the runtime cannot run) raises `SubjectError` with one
paragraph naming the model, what failed and what to pass instead.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from deploy_compare.core import results
from deploy_compare.core.kinds import Layout, OutputKind
from deploy_compare.models.heldout import HeldoutBatch
from deploy_compare.models.subjects.base import InputSpec, Subject, SubjectError, SubjectRecord, open_subject

if TYPE_CHECKING:
    from deploy_compare.core.config import ModelOptions
    from deploy_compare.core.context import RunContext
    from deploy_compare.core.rundir import RunDir

SUBJECT_FILE = "subject.json"
MAX_REL = 1e-5  # a user's model: its outputs' scale is unknown, so the gate also accepts 1e-5 of it
SEED = 2024
INT_HIGH = 2  # seeded random integer ids without a sample: 0 and 1 (valid ids for any vocabulary)


def subject_path(run_dir: RunDir):
    return run_dir.file(SUBJECT_FILE)


def load_subject_record(run_dir: RunDir, name: str) -> SubjectRecord | None:
    """The record of `name` if this run's model is a user's model called so, else None (a zoo twin)."""
    path = subject_path(run_dir)
    if not path.exists():
        return None
    record = results.load(SubjectRecord, path)
    return record if record.name == name else None


def resolve_input(subject: Subject, options: ModelOptions, sample: np.ndarray | None) -> tuple[InputSpec, str]:
    declared = subject.signature()
    given = InputSpec(tuple(options.input_shape), options.input_dtype or "float32") if options.input_shape else None
    if declared is not None:
        if given is not None and given.shape != declared.shape:
            raise SubjectError(f"--input-shape {list(given.shape)} contradicts the model's own signature "
                               f"{declared.text()}: leave --input-shape out")
        return declared, "the model's signature"
    if given is not None:
        return given, "--input-shape/--input-dtype"
    if sample is not None:
        return InputSpec(tuple(sample.shape[1:]), sample.dtype.name), "--sample FILE"
    raise SubjectError(f"{subject.name} model {options.path} declares no input shape: pass --input-shape (per "
                       "sample, e.g. --input-shape 3 224 224) and --input-dtype, or --sample FILE.npy")


def reference_inputs(spec: InputSpec, options: ModelOptions, sample: np.ndarray | None) -> tuple[np.ndarray, str]:
    if sample is not None:
        if tuple(sample.shape[1:]) != spec.shape:
            raise SubjectError(f"--sample {options.sample} holds samples of shape {list(sample.shape[1:])}; the "
                               f"model takes {spec.text()}")
        return np.ascontiguousarray(sample.astype(spec.dtype)), f"the user's sample {options.sample}"
    rng = np.random.default_rng(SEED)
    shape = (options.batch, *spec.shape)
    if np.dtype(spec.dtype).kind in "iu":
        ids = rng.integers(0, INT_HIGH, shape).astype(spec.dtype)
        return ids, f"seeded random ids in [0, {INT_HIGH}) (seed {SEED})"
    return rng.random(shape).astype(spec.dtype), f"seeded random inputs U[0, 1) (seed {SEED})"


def output_kind(options: ModelOptions, out: np.ndarray) -> OutputKind:
    if options.output_kind:
        return OutputKind(options.output_kind)
    if out.ndim == 2 and out.shape[1] > 1:
        return OutputKind.CLASS_LOGITS
    if out.ndim == 3 and out.shape[2] > 1:
        return OutputKind.TOKEN_LOGITS
    return OutputKind.REGRESSION


def prepare(options: ModelOptions, run_dir: RunDir, name: str) -> tuple[Subject, SubjectRecord]:
    """Load, resolve the input, compute and save the reference batch and subject.json (see module doc)."""
    subject = open_subject(options)
    t0 = time.perf_counter()
    try:
        subject.load()
    except SubjectError:
        raise
    except Exception as exc:
        raise SubjectError(f"cannot load {subject.name} model {options.path}: {type(exc).__name__}: {exc}") from exc
    load_seconds = time.perf_counter() - t0
    sample = np.load(options.sample, allow_pickle=False) if options.sample else None
    spec, source = resolve_input(subject, options, sample)
    x, origin = reference_inputs(spec, options, sample)
    t0 = time.perf_counter()
    try:
        out = subject.predict(x)
    except Exception as exc:
        raise SubjectError(f"{subject.name} model {options.path} failed on inputs {spec.text()} ({source}): "
                           f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}. "
                           "Check the input shape and dtype (--input-shape, --input-dtype, --sample)") from exc
    reference_seconds = time.perf_counter() - t0
    if out.shape[0] != x.shape[0] or not np.all(np.isfinite(out)):
        raise SubjectError(f"{subject.name} model {options.path}: outputs of shape {out.shape} for a batch of "
                           f"{x.shape[0]} (or not finite); the toolkit needs one finite output row per input row")
    kind = output_kind(options, out)
    HeldoutBatch(x=x, ref=out, layout=Layout.TENSOR, output_kind=kind, max_rel=MAX_REL,
                 origin=origin).save(run_dir.heldout(name))
    record = SubjectRecord(
        name=name, kind=subject.name, path=options.path, state_dict=options.state_dict,
        input_shape=list(spec.shape), input_dtype=spec.dtype,
        input_source=source, output_shape=list(out.shape[1:]), output_kind=kind, sample_origin=origin,
        samples=len(x), framework=subject.framework, unreachable=subject.unreachable(), params=subject.params(),
        load_seconds=load_seconds, reference_seconds=reference_seconds)
    results.save(record, subject_path(run_dir))
    from deploy_compare.models.training import TwinRecord

    results.save([], run_dir.models, list[TwinRecord])  # no twins in this run (the report reads subject.json)
    return subject, record


def subject_name(options: ModelOptions) -> str:
    """The model's name: `--name`, else from its path; never a zoo twin's name."""
    import re

    from deploy_compare.models.zoo import TWINS

    name = options.name or open_subject(options).default_name()
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "model"
    if name in TWINS:
        raise SubjectError(f"the model's name {name!r} is a zoo twin's: pass --name OTHER")
    return name


def run_stage(ctx: RunContext) -> None:
    """The train stage's place in a `--model` run."""
    options = ctx.config.model
    assert options is not None
    (name,) = ctx.config.profile.train.twins
    with ctx.console.status(f"model {options.path}: load, input, reference outputs"):
        _, record = prepare(options, ctx.run_dir, name)
    ctx.console.print(f"model [bold]{name}[/] ({record.kind}): input {record.input_dtype}{record.input_shape} from "
                      f"{record.input_source}; output {record.output_shape} ({record.output_kind}); reference batch: "
                      f"{record.samples} x {record.sample_origin}")
