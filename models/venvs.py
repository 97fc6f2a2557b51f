"""Separate Python environments for tools whose dependencies conflict with the project's lock (the cross-framework
converters: litert-torch wants pydantic 2.11 and jax, onnx2tf pins TensorFlow 2.19 and numpy 1.26).

`ensure(spec, timeout_s, log_dir)` gives the interpreter of a venv holding `spec.requirements`: created once with
`python -m venv` and `pip install` (the host's pip configuration: its find-links hold the CPU torch wheel, so
`torch==2.13.0` resolves to 2.13.0+cpu and never to a CUDA build), every command bounded by the time left, then
kept in the cache folder (`cache_root()`: $DEPLOY_COMPARE_CACHE, else ~/.cache/deploy-compare) under a name
that hashes the requirements, so a changed pin makes a new venv. A venv enters the cache only once complete
(built in a `.partial-<pid>` folder, renamed at the end); a failed attempt is removed and raises
`VenvFailed` with the command, its exit code and its output's tail. `make converters` creates them ahead.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.core.proc import ManagedProcess

READY = "venv.json"  # written last: what the venv holds and how long it took to create
TAIL_CHARS = 2000


class VenvFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class VenvSpec:
    name: str  # e.g. "litert-torch"
    requirements: tuple[str, ...]  # pinned

    def key(self) -> str:
        text = json.dumps({"python": sys.version_info[:2], "requirements": sorted(self.requirements)})
        return f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Venv:
    python: Path
    created_seconds: float  # how long its creation took (when it was made)
    cached: bool  # True: it already existed


def cache_root() -> Path:
    return Path(os.environ.get("DEPLOY_COMPARE_CACHE") or Path.home() / ".cache" / "deploy-compare")


def venv_env() -> dict[str, str]:
    """The host's environment without what would leak the caller's interpreter into the venv's."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def run_bounded(argv: list[str], log: Path, deadline: float, what: str) -> None:
    """Run `argv` to its end before `deadline` (time.monotonic()); VenvFailed with the output's tail otherwise."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise VenvFailed(f"{what}: no time left to run `{' '.join(argv)}`")
    proc = ManagedProcess(argv, log, env=venv_env(), name=what)
    try:
        code = proc.run_to_end(timeout=left)
    except TimeoutError as exc:
        raise VenvFailed(f"{what}: {exc}") from None
    if code != 0:
        tail = proc.log_tail(TAIL_CHARS).strip().splitlines()[-4:]
        raise VenvFailed(f"{what}: `{' '.join(argv)}` exited {code}: {' | '.join(tail)} (log {log})")


def ensure(spec: VenvSpec, timeout_s: float, log_dir: Path) -> Venv:
    """The cached venv of `spec`, created now (within `timeout_s`) when absent."""
    final = cache_root() / "venvs" / spec.key()
    if (final / READY).is_file():
        return Venv(final / "bin" / "python", json.loads((final / READY).read_text())["seconds"], cached=True)
    deadline = time.monotonic() + timeout_s
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    log = log_dir / f"venv-{spec.name}.log"
    t0 = time.perf_counter()
    try:
        run_bounded([sys.executable, "-m", "venv", str(partial)], log, deadline, f"venv {spec.name}")
        run_bounded([str(partial / "bin" / "python"), "-m", "pip", "install", "--no-input",
                     "--disable-pip-version-check", *spec.requirements], log, deadline,
                    f"pip install into venv {spec.name}")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    (partial / READY).write_text(json.dumps({"requirements": list(spec.requirements), "seconds": seconds}))
    try:
        partial.rename(final)
    except OSError:  # another process finished the same venv first: use theirs
        shutil.rmtree(partial, ignore_errors=True)
    return Venv(final / "bin" / "python", seconds, cached=False)
