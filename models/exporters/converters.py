"""Cross-framework converters: an exporter that runs a converter in its own venv (`deploy_compare.models.venvs`),
because the converter's dependencies conflict with the project's lock.

`Converter` adds to `Exporter`: the venv it needs (`venv`), and `convert(...)`, which runs one command of that
venv's interpreter within `CONVERT_TIMEOUT_S` (log in the run's logs/) and returns the JSON line the command
printed last. Converters are `optional`: a converter that fails on a twin leaves a NotRun with its real error,
and the stage goes on. Their records carry `converter` ("litert-torch 0.10.0") and the venv's versions.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from deploy_compare.core.proc import ManagedProcess
from deploy_compare.models.exporters.base import ArtifactRecord, Exporter, ExportJob
from deploy_compare.models.venvs import Venv, VenvSpec, ensure

VENV_TIMEOUT_S = 1500.0  # creating a converter's venv: 6-9 min here on a loaded machine
CONVERT_TIMEOUT_S = 600.0
ENABLE = "make converters  # creates the converters' venvs (~10 min), then: deploy-compare run --profile full"


class ConversionFailed(RuntimeError):
    pass


class Converter(Exporter):
    optional = True
    enable_command = ENABLE
    venv: ClassVar[VenvSpec]

    def environment(self, job: ExportJob) -> Venv:
        return ensure(self.venv, VENV_TIMEOUT_S, job.run_root / "logs")

    def convert(self, venv: Venv, args: list[str], job: ExportJob) -> dict:
        """Run `venv.python args...`; its last JSON line (or {} when it prints none)."""
        from deploy_compare.models.venvs import venv_env

        log = job.run_root / "logs" / f"convert-{self.name}-{job.twin}.log"
        log.unlink(missing_ok=True)
        proc = ManagedProcess([str(venv.python), *args], log, env=venv_env(), name=f"{self.name} {job.twin}")
        try:
            code = proc.run_to_end(timeout=CONVERT_TIMEOUT_S)
        except TimeoutError as exc:
            raise ConversionFailed(str(exc)) from None
        lines = proc.log_tail(200_000).splitlines()
        if code != 0:
            errors = [ln for ln in lines if "Error" in ln or "error:" in ln][-2:] or lines[-3:]
            raise ConversionFailed(f"{self.name} exited {code}: {' | '.join(e.strip() for e in errors)} (log {log})")
        found = [ln for ln in lines if ln.startswith("{") and ln.endswith("}")]
        return json.loads(found[-1]) if found else {}

    def converted_record(self, job: ExportJob, path: Path, variant: str, started: float, notes: str,
                         tool_versions: dict[str, str]) -> ArtifactRecord:
        """The record of a converted artifact, labelled by converter ("onnx2tf 1.29.24"), with the venv's versions."""
        rec = self.record(job, path, variant, started, notes=notes)
        rec.tool_versions = tool_versions
        rec.converter = f"{self.venv.name} {tool_versions.get(self.venv.name, '?')}"
        return rec


def main() -> int:
    """`make converters`: create (or find) the venv of every registered converter, printing how long each took."""
    import tempfile

    from deploy_compare.models.exporters.base import load_exporters

    specs = {cls.venv.name: cls.venv for _, cls in load_exporters().items() if issubclass(cls, Converter)}
    with tempfile.TemporaryDirectory(prefix="dc-venv-logs-") as logs:
        for spec in specs.values():
            try:
                venv = ensure(spec, VENV_TIMEOUT_S, Path(logs))
            except Exception as exc:
                print(f"{spec.name}: FAILED: {exc}")
                return 1
            print(f"{spec.name}: {venv.python} ({'cached' if venv.cached else 'created'}; "
                  f"{venv.created_seconds:.0f} s to create)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
