"""The messages between a locust master (the controller) and its workers, over locust's custom
messages. Samples travel as a typed `RawPart` (JSON of the dataclass), never as loose dicts.

    PHASE    master -> workers   {"phase": k}  open window k; {"phase": None} closes the open one
    COLLECT  master -> workers   {"phase": k}  send your part of window k
    STEP     master -> workers   {"mode", "step", "index_of", "count"}  drive your slice of a mode's step
    PART     worker -> master    {"worker", "phase", "part"}
"""
from __future__ import annotations

from typing import Any

from deploy_compare.core.results import from_json_data, to_json_data
from deploy_compare.loadtests.plan import RawPart

PHASE = "dc_phase"
COLLECT = "dc_collect"
STEP = "dc_step"
PART = "dc_part"


def part_message(worker: str, phase: int, part: RawPart) -> dict[str, Any]:
    return {"worker": worker, "phase": phase, "part": to_json_data(part)}


def read_part(data: dict[str, Any]) -> tuple[int, RawPart]:
    return int(data["phase"]), from_json_data(RawPart, data["part"])


def step_message(mode: str, step: Any, worker_ids: list[str]) -> dict[str, Any]:
    ids = sorted(worker_ids)
    return {"mode": mode, "step": to_json_data(step), "index_of": {cid: i for i, cid in enumerate(ids)},
            "count": len(ids)}
