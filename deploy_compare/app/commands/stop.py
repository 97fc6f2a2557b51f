"""`deploy-compare stop [RUN]`: stop the servers, locust processes and containers that a deploy-compare
command started and did not stop because it died (SIGKILL, a crash, a closed CI job). Every command that
starts processes does the same first; this command does it on demand, for every run or only for `RUN`.

Process groups come from the per-user ownership records (`deploy_compare.core.ownership`), containers from their labels
(`deploy-compare.owner-pid`, `deploy-compare.run`); only those whose owning command is dead are touched."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy_compare.core import ownership


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, nargs="?", default=None, metavar="RUN",
                        help="only what was started for this run folder (default: everything left behind)")


def stop_orphans(run: Path | None, header: str) -> list[str]:
    """Stop the process groups and containers of dead owners (of `run`, if given); print what was stopped
    under `header` and return those lines."""
    from deploy_compare.serving.launchers.docker import sweep_orphan_containers

    stopped = ownership.sweep_orphans(run) + sweep_orphan_containers(run)
    if stopped:
        print("\n  ".join([header, *stopped]), file=sys.stderr)
    return stopped


def main(args: argparse.Namespace) -> int:
    stopped = stop_orphans(args.run_dir, "deploy-compare stop: stopped")
    scope = f" for {args.run_dir.resolve()}" if args.run_dir else ""
    if not stopped:
        print(f"deploy-compare stop: nothing left running{scope} by a deploy-compare that ended", file=sys.stderr)
    for owner in ownership.live_owners(args.run_dir):
        print(f"still running{scope}: {ownership.describe(owner)}: it stops its own servers; end it with "
              f"`kill -INT {owner.pid}` (or `kill {owner.pid}`)", file=sys.stderr)
    return 0
