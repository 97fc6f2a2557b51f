"""Theano, tried rather than remembered: `pip install theano==1.0.5` then `import theano` in a throwaway
venv, every command bounded by one time budget, and what happened (exit codes, output tails, versions,
seconds) recorded as the Theano row's NotRun. Profiles that do not try (FloorSettings.try_theano off) say so,
with the command that tries.

The venv gets pip through `python -m venv` (ensurepip) and uses the host's pip configuration (index,
find-links, constraints); Theano's compile cache goes into the venv's folder, so nothing outlives the attempt.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy_compare.core.config import FloorSettings
from deploy_compare.core.proc import ManagedProcess
from deploy_compare.core.results import NotRun
from deploy_compare.models.floor.schema import CommandStep, TheanoAttempt

REQUIREMENT = "theano==1.0.5"
TRY_COMMAND = "deploy-compare floor RUN_DIR --try-theano"
TAIL_CHARS = 3000
REASON_TAIL_LINES = 3
ERROR_LINE = re.compile(r"^(?:[\w.]*(?:Error|Exception|Exit)\b|ERROR\b).*")
COMPILER_ERROR = re.compile(r"([\w.+-]+:\d+:\d+: error: [^.\n]{1,160})")
THROWAWAY_PATH = re.compile(r"/\S*dc-theano-[^/\s]*/(?:[^/\s]*/)*")  # folders of the deleted venv
VERSIONS_TIMEOUT_S = 60.0  # the versions query runs even when the budget is spent, bounded on its own
# prints the versions of the venv's interpreter and packages as JSON, without importing any of them
VERSIONS_CODE = ("import importlib.metadata as m, json, platform\n"
                 "def v(p):\n    try:\n        return m.version(p)\n"
                 "    except m.PackageNotFoundError:\n        return '-'\n"
                 "print(json.dumps({'python': platform.python_version(), "
                 "**{p: v(p) for p in ('pip', 'theano', 'numpy', 'scipy')}}))")


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


def theano_steps(venv: Path, requirement: str = REQUIREMENT) -> list[Step]:
    """The attempt's commands: create the venv (with pip), install, import."""
    python = str(venv / "bin" / "python")
    return [Step("venv", (sys.executable, "-m", "venv", str(venv))),
            Step("install", (python, "-m", "pip", "install", "--no-input", requirement)),
            Step("import", (python, "-c", "import theano; print('theano', theano.__version__)"))]


def versions_step(venv: Path) -> Step:
    return Step("versions", (str(venv / "bin" / "python"), "-c", VERSIONS_CODE))


def _env(workdir: Path) -> dict[str, str]:
    """The host's environment without what would leak the caller's interpreter into the venv's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["THEANO_FLAGS"] = f"base_compiledir={workdir / 'theano-compiledir'}"
    return env


def run_step(step: Step, timeout_s: float, log_dir: Path, env: dict[str, str]) -> CommandStep:
    """One command as a ManagedProcess, stopped (with its process group) at `timeout_s` and on every exit."""
    log = log_dir / f"theano-{step.name}.log"
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = ManagedProcess(list(step.argv), log, env=env, name=f"theano-{step.name}").start()
    exit_code: int | None = None
    try:
        assert proc.popen is not None
        exit_code = proc.popen.wait(timeout=max(timeout_s, 0.0))
    except subprocess.TimeoutExpired:
        exit_code = None
    finally:
        proc.stop()
    output = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return CommandStep(name=step.name, argv=list(step.argv), exit_code=exit_code, seconds=time.perf_counter() - t0,
                       output_tail=output[-TAIL_CHARS:], log=str(log), summary=summarize(output))


def summarize(output: str, head_chars: int = 160, errors: int = 3) -> str:
    """The last error line (a Python exception or pip's ERROR) and the first distinct compiler errors, with
    the throwaway folders cut from paths; the last lines of output when there is no error line."""
    text = THROWAWAY_PATH.sub("", output)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    hits = [ln for ln in lines if ERROR_LINE.match(ln)]
    head = hits[-1] if hits else " | ".join(lines[-REASON_TAIL_LINES:])
    by_message: dict[str, str] = {}  # one per distinct message (the same error recurs on many lines)
    for hit in COMPILER_ERROR.findall(text):
        by_message.setdefault(hit.split(": error: ", 1)[1].strip(), hit.strip())
    found = list(by_message.values())
    short = head if len(head) <= head_chars else head[:head_chars] + "..."
    if not found:
        return short
    more = f" (+{len(found) - errors} more)" if len(found) > errors else ""
    return f"{short} || compiler errors: {'; '.join(found[:errors])}{more}"


def attempt(settings: FloorSettings, log_dir: Path,
            steps_for: Callable[[Path], Sequence[Step]] = theano_steps) -> TheanoAttempt:
    """Run the steps in a temporary folder until one fails or the budget (`theano_timeout_s`) is spent."""
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done: list[CommandStep] = []
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dc-theano-") as tmp:
        workdir = Path(tmp)
        venv = workdir / "venv"
        env = _env(workdir)
        steps = list(steps_for(venv))
        for step in steps:
            left = settings.theano_timeout_s - (time.perf_counter() - t0)
            done.append(run_step(step, left, log_dir, env))
            if done[-1].exit_code != 0:
                break
        if (venv / "bin" / "python").exists():
            versions = _versions(run_step(versions_step(venv), VERSIONS_TIMEOUT_S, log_dir, env))
    ok = len(done) == len(steps) and all(s.exit_code == 0 for s in done)
    return TheanoAttempt(requirement=REQUIREMENT, ok=ok, steps=done, versions=versions,
                         seconds=time.perf_counter() - t0, timeout_s=settings.theano_timeout_s)


def _versions(step: CommandStep) -> dict[str, str]:
    if step.exit_code != 0:
        return {"error": f"versions query exited {step.exit_code}: {_tail(step.output_tail, 2)}"}
    lines = [ln for ln in step.output_tail.splitlines() if ln.startswith("{")]
    return {k: str(v) for k, v in json.loads(lines[-1]).items()} if lines else {}


def _tail(text: str, lines: int) -> str:
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:])


def _describe(step: CommandStep, timeout_s: float) -> str:
    what = " ".join(step.argv[1:]) if step.name != "venv" else "python -m venv"
    if step.exit_code is None:
        return f"`{what}` stopped after {step.seconds:.1f} s (FloorSettings.theano_timeout_s = {timeout_s:g} s)"
    return f"`{what}` exited {step.exit_code} in {step.seconds:.1f} s"


def outcome(tried: TheanoAttempt | None, chars: int = 160) -> str:
    """What the stored attempt did, in one short phrase for the report's Theano cells (the NotRun's reason has
    the whole story): not tried, imported, or the failing command and what it said."""
    if tried is None:
        return "not tried in this run (FloorSettings.try_theano is off)"
    found = ", ".join(f"{k} {tried.versions[k]}" for k in ("theano", "python") if k in tried.versions)
    if tried.ok:
        return f"imports in a throwaway venv ({found or 'versions unknown'}), but no runtime here measures it"
    failed = tried.steps[-1]
    seen = failed.summary or _tail(failed.output_tail, 1)
    seen = seen if len(seen) <= chars else seen[:chars - 3] + "..."
    return f"tried and failed: {_describe(failed, tried.timeout_s)}" + (f": {seen}" if seen else "")


def not_run(settings: FloorSettings, profile: str, tried: TheanoAttempt | None) -> NotRun:
    """Theano's NotRun: what this run's attempt saw, or that this profile did not try (and how to try)."""
    if tried is None:
        return NotRun(what="theano", reason=f"not tried in this profile ({profile}: FloorSettings.try_theano is "
                      "off); the floor measures its maintained successor PyTensor instead (runtime `pytensor`)",
                      enable_command=f"{TRY_COMMAND}  # or --profile full: pip install {REQUIREMENT} and "
                                     "import theano in a throwaway venv, recording what happens")
    v = tried.versions
    found = ", ".join(f"{k} {v[k]}" for k in ("python", "pip", "theano", "numpy", "scipy") if k in v) or \
        f"versions unknown: {v.get('error', 'the venv was not created')}"
    steps = "; ".join(_describe(s, tried.timeout_s) for s in tried.steps)
    if tried.ok:
        return NotRun(what="theano", reason=f"theano imports in a throwaway venv ({found}; {steps}), but the floor "
                      "has no Theano runtime module: it measures its successor PyTensor (runtime `pytensor`)",
                      enable_command="add a runtime module under models/runtimes/ that runs in such a venv")
    failed = tried.steps[-1]
    seen = failed.summary or _tail(failed.output_tail, REASON_TAIL_LINES)
    return NotRun(what="theano", reason=f"tried in a throwaway venv in {tried.seconds:.0f} s ({found}): {steps}: "
                  f"{seen} (full output: {failed.log}); the floor measures "
                  "its maintained successor PyTensor instead (runtime `pytensor`)",
                  enable_command=f"{TRY_COMMAND}  # tries again; untried here: an interpreter and NumPy from "
                                 "Theano's time (Python <= 3.8, numpy < 1.20)")
