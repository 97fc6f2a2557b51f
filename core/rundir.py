"""The run folder `results/<run-id>/`: one place that names every file a run writes.

    config.json        profile and run settings            environment.json  versions, CPU, git
    stages.json        wall time per stage                 models.json       twins: params, accuracy
    manifest.json      exported artifacts (sha256, ...)    parity.json       parity gate figures
    inspect.json       graph summary per artifact (op counts, opset)
    floor.json         in-process runtime benchmarks       serving.json      servers: cold start, parity, metrics
    loadtest.json      closed/open-loop load results       results.json      everything the report shows
    load_points.csv    one row per load point (beside loadtest.json, written from the same results)
    report.md / report.html / plots/                       artifacts/  data/  logs/

A run folder that already holds results is refused unless `force` is given (no silent overwrite). A
finished run folder is read, never changed, by later commands (`serve`, `report`, `loadtest`, `inspect`):
what they write goes to a new folder of their own (`session_folder`, e.g. `serve-20260101T120000Z/`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


class RunDirExists(FileExistsError):
    pass


@dataclass(frozen=True)
class RunDir:
    path: Path

    # --- folders ---
    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    # --- files ---
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.file("config.json")

    @property
    def environment(self) -> Path:
        return self.file("environment.json")

    @property
    def stages(self) -> Path:
        return self.file("stages.json")

    @property
    def models(self) -> Path:
        return self.file("models.json")

    @property
    def manifest(self) -> Path:
        return self.file("manifest.json")

    @property
    def parity(self) -> Path:
        return self.file("parity.json")

    @property
    def inspect(self) -> Path:
        return self.file("inspect.json")

    @property
    def floor(self) -> Path:
        return self.file("floor.json")

    @property
    def serving(self) -> Path:
        return self.file("serving.json")

    @property
    def loadtest(self) -> Path:
        return self.file("loadtest.json")

    @property
    def load_points(self) -> Path:
        return self.file("load_points.csv")

    @property
    def results(self) -> Path:
        return self.file("results.json")

    def heldout(self, twin: str) -> Path:
        """Fixed held-out batch of a twin: npz with x (canonical layout), y and the reference logits."""
        return self.data / f"{twin}_heldout.npz"

    def twin_dir(self, twin: str) -> Path:
        """Trained weights of a twin (Keras model and transplanted PyTorch state dict)."""
        return self.artifacts / twin

    def create(self, force: bool = False) -> RunDir:
        if self.path.exists() and any(self.path.iterdir()) and not force:
            raise RunDirExists(
                f"run folder {self.path} already holds results; choose another --run-id, or pass --force "
                "to write into it (existing files are replaced)")
        for folder in (self.path, self.artifacts, self.data, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def require(self) -> RunDir:
        if not self.path.is_dir():
            raise FileNotFoundError(f"run folder {self.path} does not exist; run `deploy-compare run` first")
        return self


def session_folder(run_dir: RunDir, command: str) -> Path:
    """A new folder `<run>/<command>-<UTC time>/` for the outputs of a later command on a finished run."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 1000):
        folder = run_dir.path / (f"{command}-{stamp}" if n == 1 else f"{command}-{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:  # two commands in the same second
            continue
    raise FileExistsError(f"could not create a new {command}-{stamp}-N folder in {run_dir.path}")
