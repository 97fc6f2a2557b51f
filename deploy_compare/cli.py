"""`deploy-compare`: the command line. Subcommands are a registry of modules, imported only when
chosen (so `--help` never imports TensorFlow or PyTorch). Each command module defines
`configure(parser)` and `main(args) -> int`.

Any failure ends with a non-zero exit and one paragraph: what failed, where, what to do, and the
path of the log holding the full traceback; started processes are stopped on every exit path. SIGINT
and SIGTERM end a command with 130 / 143 after it stopped what it started (`core.proc`); if the
command itself is killed, its watchdog stops its servers (`core.ownership`), and a command that starts
servers first stops whatever an earlier, dead command left running and says so.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback
from pathlib import Path

from core.errors import UserError
from core.registry import Registry

COMMANDS: Registry[tuple[str, str]] = Registry("command")
for _name, _module, _help in (
    ("run", "deploy_compare.commands.run", "run the pipeline: train, export, parity, floor, serve + load, report"),
    ("inspect", "models.inspect", "print signature, size, sha256 and graph summary of an exported artifact"),
    ("floor", "models.floor", "benchmark the in-process runtimes of a run folder's artifacts"),
    ("serve", "serving.cli", "start the servers for a run folder and keep them up until Ctrl-C"),
    ("loadtest", "loadtests.cli", "load-test an endpoint (yours or a run's) with locust, closed or open loop"),
    ("report", "deploy_compare.report", "render report.md / report.html from a run folder's saved results"),
    ("compare", "deploy_compare.commands.compare", "do two runs agree? saturation and p50 at 1 user per endpoint"),
    ("stop", "deploy_compare.commands.stop", "stop servers and containers left by a deploy-compare that died"),
):
    COMMANDS.register(_name)((_module, _help))
# commands that start processes (servers, locust, isolated runtimes) first stop what dead commands left
STARTS_PROCESSES = frozenset({"run", "floor", "serve", "loadtest"})


def _top_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="deploy-compare", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        description="Measure how the TensorFlow/Keras and PyTorch deployment stacks compare.")
    parser.add_argument("command", choices=COMMANDS.names(), metavar="COMMAND", help="one of the commands below")
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    from core import proc

    # TensorFlow's C++ start-up chatter (no CUDA here, oneDNN notes) hides the progress lines; errors still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    command = top.parse_args(argv[:1]).command
    module_name, help_ = COMMANDS.get(command)
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"deploy-compare {command}", description=help_)
    module.configure(parser)
    args = parser.parse_args(argv[1:])
    proc.install_signal_handlers()
    already_running = proc.live_processes()  # a command stops what it started, nothing else
    try:
        if command in STARTS_PROCESSES:
            from deploy_compare.commands.stop import stop_orphans

            stop_orphans(None, header=f"deploy-compare {command}: first stopped what an earlier command left running:")
        return int(module.main(args) or 0)
    except KeyboardInterrupt as exc:
        proc.stop_all(keep=already_running)  # before saying so
        kept = getattr(args, "log_dir", None)
        where = f" in {Path(kept).parent}" if kept else ""
        name = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
        print(f"\ndeploy-compare {command}: stopped by {name}; every process it started was stopped, "
              f"results of finished steps are kept{where} (stages.json marks where a run stopped), nothing "
              "is left running.", file=sys.stderr)
        return proc.exit_code(exc)
    except UserError as exc:
        print(f"deploy-compare {command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        log = _write_traceback(args)
        print(f"\ndeploy-compare {command} failed: {type(exc).__name__}: {exc}\n"
              f"The full traceback is in {log}; server and stage logs are beside it. Fix the cause named above "
              f"and rerun (add --force to reuse the same run folder).", file=sys.stderr)
        return 1
    finally:
        proc.stop_all(keep=already_running)
        if not already_running:  # a command run inside a test session leaves the session's watchdog alone
            from core import ownership

            ownership.release()


def _write_traceback(args: argparse.Namespace) -> Path:
    run_dir = getattr(args, "log_dir", None)
    folder = Path(run_dir) if run_dir else Path.cwd() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "error.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
