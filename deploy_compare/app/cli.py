"""`deploy-compare`: the command line. Subcommands are a registry of modules, imported only when
chosen (so `--help` never imports TensorFlow or PyTorch). Each command module defines
`configure(parser)` and `main(args) -> int`.

Any failure ends with a non-zero exit and one paragraph: what failed, where, what to do, and the
path of the log holding the full traceback; started processes are stopped on every exit path. SIGINT
and SIGTERM end a command with 130 / 143 after it stopped what it started (`deploy_compare.core.proc`); if the
command itself is killed, its watchdog stops its servers (`deploy_compare.core.ownership`), and a command that starts
servers first stops whatever an earlier, dead command left running and says so.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback
from pathlib import Path

from deploy_compare.core.errors import UserError
from deploy_compare.core.registry import Registry

COMMANDS: Registry[tuple[str, str, str]] = Registry("command")  # name -> (module, one line of help, examples)
for _name, _module, _help, _example in (
    ("run", "deploy_compare.app.commands.run", "run the pipeline: train, export, parity, floor, serve + load, report",
     "deploy-compare run --profile quick --run-id first        # results/first/report.html\n"
     "deploy-compare run --run-id first --force --stages floor report"),
    ("inspect", "deploy_compare.models.inspect",
     "print signature, size, sha256 and graph summary of an exported artifact",
     "deploy-compare inspect results/first/artifacts/mlp/onnx/model_torch.onnx --json"),
    ("floor", "deploy_compare.models.floor", "benchmark the in-process runtimes of a run folder's artifacts",
     "deploy-compare floor results/first --twins mlp"),
    ("serve", "deploy_compare.serving.cli", "start the servers for a run folder and keep them up until Ctrl-C",
     "deploy-compare serve results/first --twins mlp            # prints each endpoint; Ctrl-C stops them\n"
     "deploy-compare serve results/first --cpu-idle poll        # idle CPUs poll, as in the load stage"),
    ("loadtest", "deploy_compare.loadtests.cli",
     "load-test an endpoint (yours or a run's) with locust, closed or open loop",
     "deploy-compare loadtest --url http://127.0.0.1:8080/predictions/mlp-torchscript --server torchserve \\\n"
     "    --payload results/first --twin mlp --token-file key_file.json --out results/my-load\n"
     "deploy-compare loadtest --null --payload x.npy             # the generator's own headroom"),
    ("report", "deploy_compare.app.report", "render report.md / report.html from a run folder's saved results",
     "deploy-compare report results/first"),
    ("compare", "deploy_compare.app.commands.compare", "do two runs agree? saturation and p50 at 1 user per endpoint",
     "deploy-compare compare results/first results/second --check"),
    ("stop", "deploy_compare.app.commands.stop", "stop servers and containers left by a deploy-compare that died",
     "deploy-compare stop                                        # everything a dead command left running\n"
     "deploy-compare stop results/first"),
):
    COMMANDS.register(_name)((_module, _help, _example))
# commands that start processes (servers, locust, isolated runtimes) first stop what dead commands left
STARTS_PROCESSES = frozenset({"run", "floor", "serve", "loadtest"})


def _top_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<10} {help_}" for name, (_, help_, _) in COMMANDS.items())
    epilog += "\n\n`deploy-compare COMMAND --help` shows a command's options and examples."
    parser = argparse.ArgumentParser(
        prog="deploy-compare", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        description="Measure how the TensorFlow/Keras and PyTorch deployment stacks compare.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("command", choices=COMMANDS.names(), metavar="COMMAND", help="one of the commands below")
    return parser


def version() -> str:
    """The installed distribution's version (pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("deploy-compare")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def command_parser(command: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of one command, with its examples as the epilog, and its module."""
    module_name, help_, example = COMMANDS.get(command)
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"deploy-compare {command}", description=help_,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + "\n".join(f"  {line}" for line in example.splitlines()))
    module.configure(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    import faulthandler
    import io
    import os

    from deploy_compare.core import proc

    # a crash in native code (TensorFlow, PyTorch, onnxruntime) prints the Python stack of every thread on stderr
    # instead of ending the command silently with SIGSEGV/SIGABRT (not when called in-process with a captured
    # stderr that has no file descriptor, e.g. under pytest's capsys)
    try:
        faulthandler.enable(file=sys.stderr)
    except (AttributeError, io.UnsupportedOperation):
        pass  # a stream without a descriptor: nothing native can write to it

    # TensorFlow's C++ start-up chatter (no CUDA here, oneDNN notes) hides the progress lines; errors still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    command = top.parse_args(argv[:1]).command  # --version prints and exits here
    parser, module = command_parser(command)
    args = parser.parse_args(argv[1:])
    proc.install_signal_handlers()
    already_running = proc.live_processes()  # a command stops what it started, nothing else
    try:
        if command in STARTS_PROCESSES:
            from deploy_compare.app.commands.stop import stop_orphans

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
            from deploy_compare.core import ownership

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
