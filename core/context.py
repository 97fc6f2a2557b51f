"""What a pipeline stage receives: the run's configuration, its folder, a console and the stage timings.

Stages live in `models/`, `serving/`, `loadtests/` and the report; the pipeline that calls them lives in
the app (`deploy_compare.app.pipeline`). The context is here so that the stages import it from below.

A stage may leave a resource open for a later stage of the same run (`keep`): the serve stage keeps its
server session for the load stage, so `--stages serve load` starts the servers once. The pipeline closes
every kept resource when the run ends, on every exit path (`close_resources`).
"""
from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console

from deploy_compare.core import results
from deploy_compare.core.config import RunConfig
from deploy_compare.core.rundir import RunDir

T = TypeVar("T")


@dataclass
class RunContext:
    config: RunConfig
    run_dir: RunDir
    console: Console = field(default_factory=lambda: Console(stderr=True))
    timings: list[results.StageTiming] = field(default_factory=list)
    upcoming: tuple[str, ...] = ()  # the stages of this run still to come (set by the pipeline)
    resources: dict[str, Any] = field(default_factory=dict)  # kept open for later stages, by key
    _exits: dict[str, ExitStack] = field(default_factory=dict, repr=False)

    def keep(self, key: str, resource: AbstractContextManager[T]) -> T:
        """Enter `resource` and keep it open until it is released or the run ends; later stages find it
        in `resources[key]`."""
        if key in self.resources:
            raise KeyError(f"a resource {key!r} is already kept open in this run")
        stack = ExitStack()
        value = stack.enter_context(resource)
        self._exits[key] = stack
        self.resources[key] = value
        return value

    def release(self, key: str) -> None:
        """Close the resource kept under `key` now (no-op when none is)."""
        self.resources.pop(key, None)
        stack = self._exits.pop(key, None)
        if stack is not None:
            stack.close()

    def close_resources(self) -> None:
        """Close every kept resource (last kept, first closed), also when one of them fails to close."""
        with ExitStack() as all_of_them:
            for key in list(self._exits):
                all_of_them.callback(self.release, key)
