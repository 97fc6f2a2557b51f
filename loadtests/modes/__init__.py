"""Load modes, one module each, registered by name in `LOAD_MODES` (see base.py)."""
from deploy_compare.loadtests.modes import closed, open  # noqa: F401  (register the modes)
from deploy_compare.loadtests.modes.base import LOAD_MODES, LoadJob, LoadMode, ModeOutcome

__all__ = ["LOAD_MODES", "LoadJob", "LoadMode", "ModeOutcome", "get_mode"]


def get_mode(name: str) -> LoadMode:
    return LOAD_MODES.get(name)()
