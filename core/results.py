"""Typed results and their JSON round trip.

Every config and result is a standard `@dataclass`; `to_json_data` / `from_json_data` turn it into
plain JSON data and back (validated by pydantic, so a wrong field type fails loudly with the path
of the field). `save` writes atomically; `load` reads and validates.

Shared result types used by every stage:
- `Measurement`: a named quantity with its unit, direction, raw samples and derived statistics.
- `NotRun`: a stack or step that could not run, with the reason and the command that enables it.
- `StageTiming`: wall time of one pipeline stage.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


@cache
def _adapter(cls: Any) -> TypeAdapter:
    return TypeAdapter(cls)


def to_json_data(obj: Any, cls: Any | None = None) -> Any:
    """Dataclass (or list/dict of them) -> plain JSON-compatible data."""
    return _adapter(cls if cls is not None else type(obj)).dump_python(obj, mode="json")


def from_json_data(cls: type[T] | Any, data: Any) -> T:
    """Plain JSON data -> validated instance of `cls` (a dataclass or e.g. `list[Cls]`)."""
    return _adapter(cls).validate_python(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(obj: Any, path: Path, cls: Any | None = None) -> Path:
    atomic_write_text(Path(path), json.dumps(to_json_data(obj, cls), indent=2, sort_keys=False) + "\n")
    return Path(path)


def load(cls: type[T] | Any, path: Path) -> T:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"result file {path} does not exist; run the stage that writes it first") from None
    return from_json_data(cls, data)


@dataclass
class Measurement:
    """A measured quantity: raw samples kept, statistics derived from them (see `stats.summarize`)."""

    name: str
    unit: str  # "s", "ms", "req/s", "bytes", ...
    higher_is_better: bool
    samples: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class NotRun:
    """Something that could not run here: shown in the report, never silently dropped."""

    what: str  # e.g. "tfserving/savedmodel/rest"
    reason: str
    enable_command: str  # the exact command that would make it run


@dataclass
class StageTiming:
    stage: str
    seconds: float
    ok: bool
    error: str | None = None
