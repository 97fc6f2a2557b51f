"""`deploy-compare loadtest`: load-test any endpoint (yours included) with locust, closed or open loop.

    deploy-compare loadtest --url http://127.0.0.1:8080/predictions/mlp --payload results/RUN --twin mlp
    deploy-compare loadtest --grpc 127.0.0.1:7070 --server torchserve --model-name mlp --payload x.npy \\
        --mode open --rate 200 400 --token-file key_file.json --workers 2 --out results/my-load
    deploy-compare loadtest --null --payload x.npy     # the generator's own headroom (null endpoint)

Results go to OUT/loadtest.json (typed, the same records as the pipeline's), logs to OUT/logs/.
Targets must be loopback unless --allow-remote is given (then a warning is printed).
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from deploy_compare.core import cpuidle
from deploy_compare.core.config import PROFILES, get_profile
from deploy_compare.core.kinds import LoadModeKind
from deploy_compare.loadtests.senders import API_PATHS


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, not {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="REST predict URL, or a base URL (the path then comes from --server)")
    where.add_argument("--grpc", metavar="HOST:PORT", help="gRPC endpoint (needs --server torchserve|tfserving)")
    where.add_argument("--null", action="store_true", help="measure the generator against the null endpoint")
    parser.add_argument("--server", choices=["tfserving", "torchserve", "external"], default="external",
                        help="API style (REST path, gRPC method); external = TF Serving-style REST")
    parser.add_argument("--model-name", default="model", help="served model name")
    parser.add_argument("--mode", choices=[*LoadModeKind, "both"], default=LoadModeKind.CLOSED.value,
                        help="closed (N users, each waits for its answer), open (a Poisson schedule of --rate "
                             "req/s) or both (closed, then open at fractions of its saturation); default closed")
    parser.add_argument("--users", type=int, nargs="+", help="closed loop: user counts (default 1, 2, 4, ...)")
    parser.add_argument("--rate", type=float, nargs="+", help="open loop: target rates in req/s "
                        "(default with --mode both: fractions of the measured saturation)")
    parser.add_argument("--no-stop-rule", action="store_true", help="closed loop: run every --users step")
    parser.add_argument("--payload", required=True, help="run folder (with --twin), .npy or .npz (array x)")
    parser.add_argument("--twin", help="twin whose held-out batch to send (payload = run folder)")
    parser.add_argument("--layout", default="", help="input layout of the endpoint (NHWC, NCHW, NF)")
    parser.add_argument("--batch-size", type=int, default=1, help="instances per request (default 1)")
    parser.add_argument("--input-name", default="inputs", help="TF Serving gRPC: signature input name")
    parser.add_argument("--token-file", help="bearer token file (plain text or TorchServe key_file.json)")
    parser.add_argument("--workers", type=int, default=0, help="locust worker processes (distributed mode)")
    parser.add_argument("--server-cpus", type=int, nargs="*", default=[],
                        help="cores the server uses: the generator is pinned to the others")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick", help="window and repeat settings")
    parser.add_argument("--server-warmup", type=_seconds, default=None, metavar="SECONDS",
                        help="before the first point, load the server until stable for at most this long (excluded "
                             "from every figure; 0 = none; default: the profile's)")
    cpuidle.add_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("results/loadtest"),
                        help="output folder (default results/loadtest); one that already holds results is refused "
                             "unless --force")
    parser.add_argument("--force", action="store_true", help="write into an --out folder that already holds "
                                                             "results (loadtest.json and logs are replaced)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback target")


def _is_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (socket.gaierror, ValueError):
        return False


def _endpoint(args: argparse.Namespace, host_port: str | None = None):
    from deploy_compare.serving.endpoint import Endpoint, TensorSignature

    if args.url:
        parts = urlsplit(args.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url {args.url!r}: expected http://HOST:PORT[/path]")
        host = parts.hostname
        api = API_PATHS.get(args.server, API_PATHS["tfserving"])
        path = parts.path if parts.path not in ("", "/") else api.format(model=args.model_name)
        target, protocol = f"{parts.scheme}://{parts.netloc}{path}", "rest"
    elif args.grpc:
        if args.server == "external":
            raise ValueError("--grpc needs --server torchserve or --server tfserving (selects the gRPC method)")
        host = args.grpc.rsplit(":", 1)[0].strip("[]")
        target, protocol = args.grpc, "grpc"
    else:
        host, target, protocol = "127.0.0.1", f"http://{host_port}/v1/models/null:predict", "rest"
    signature = TensorSignature(args.input_name, "") if protocol == "grpc" else None  # TF Serving's tensor names
    endpoint = Endpoint(stack=f"{args.server if not args.null else 'null'}/{args.model_name}",
                        server="null" if args.null else args.server, protocol=protocol,
                        model=args.twin or args.model_name, served_name=args.model_name, target=target,
                        layout=args.layout, server_cpus=list(args.server_cpus), signature=signature)
    return endpoint, host


def main(args: argparse.Namespace) -> int:
    from deploy_compare.core.errors import UserError
    from deploy_compare.core.results import save
    from deploy_compare.loadtests.results import LoadTestResults
    from deploy_compare.loadtests.stage import _locust_version, label_of, measure_endpoint, settings_data

    profile = get_profile(args.profile)
    settings = profile.load
    if args.server_warmup is not None:
        settings = replace(settings, server_warmup_seconds=args.server_warmup)
    if args.cpu_idle:
        settings = replace(settings, cpu_idle=args.cpu_idle)
    if args.workers < 0 or args.batch_size < 1:
        raise UserError("--workers must be >= 0 and --batch-size >= 1")
    modes = tuple(LoadModeKind) if args.mode == "both" else (LoadModeKind(args.mode),)
    if modes == (LoadModeKind.OPEN,) and not args.rate:
        raise UserError("--mode open needs --rate R [R ...] (req/s), or use --mode both to derive rates")
    if args.token_file and not Path(args.token_file).is_file():
        raise UserError(f"--token-file {args.token_file} does not exist")
    try:
        from deploy_compare.loadtests.payload import build_payload

        build_payload(args.payload, twin=args.twin, layout=args.layout or None, batch_size=args.batch_size)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"payload: {exc}") from None
    out = args.out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise UserError(f"--out {out} already holds results; choose another --out, or pass --force to write into "
                        "it (loadtest.json and logs are replaced)")
    log_dir = out / "logs"
    args.log_dir = log_dir
    null_server, port = None, 0
    try:
        if args.null:
            from deploy_compare.loadtests.headroom import server_core_for_null
            from deploy_compare.loadtests.launch import free_port
            from deploy_compare.loadtests.nullserver import start_null_server

            port = free_port()
            if not args.server_cpus:
                args.server_cpus = sorted(server_core_for_null())
            null_server = start_null_server(port, log_dir / "nullserver.log", cpus=set(args.server_cpus))
        try:
            endpoint, host = _endpoint(args, f"127.0.0.1:{port}" if args.null else None)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not _is_loopback(host):
            if not args.allow_remote:
                raise UserError(f"target host {host!r} is not loopback; pass --allow-remote to load-test it "
                                "(you are about to send load to another machine)")
            print(f"warning: load-testing a non-loopback target {host!r} (--allow-remote)", file=sys.stderr)
        extra = ["--token-file", str(Path(args.token_file).resolve())] if args.token_file else []
        if args.null:
            settings = replace(settings, twins=())
        with cpuidle.hold(settings.cpu_idle) as idle:
            print(idle.summary())
            measured = measure_endpoint(endpoint, settings, payload=args.payload, twin=args.twin, log_dir=log_dir,
                                        modes=modes, users=args.users, rates=args.rate, workers=args.workers,
                                        extra_options=extra, stop_rule=not args.no_stop_rule)
    finally:
        if null_server is not None:
            null_server.stop(timeout=5)
    results = LoadTestResults(profile=profile.name, label=label_of(profile), settings=settings_data(settings),
                              locust_version=_locust_version(), endpoints=[measured], cpu_idle=idle)
    path = save(results, out / "loadtest.json")
    _print_summary(measured)
    print(f"results: {path}\nlogs: {log_dir}")
    return 0 if measured.status == "ok" else 1


def _print_summary(measured) -> None:
    from rich.console import Console
    from rich.table import Table

    from deploy_compare.loadtests.stage import summary_line

    table = Table(title=f"{measured.endpoint['stack']} {measured.endpoint['protocol']} "
                        f"({measured.endpoint['target']})")
    for col in ("mode", "load", "req/s", "p50 ms", "p99 ms", "errors", "gen CPU", "late", "valid"):
        table.add_column(col, no_wrap=True)
    points = [p for s in measured.sweeps for p in s.points] + measured.open_points
    for p in points:
        st = p.latency_ms.stats if p.latency_ms else {}
        cpu = max((c.cpu_fraction for c in p.generator_cpu), default=0.0)
        table.add_row(p.mode, p.load, f"{p.throughput_rps:,.0f}", f"{st.get('p50', float('nan')):.2f}",
                      f"{st.get('p99', float('nan')):.2f}", str(sum(p.errors.values())), f"{cpu:.0%}",
                      f"{p.late_fraction:.1%}" if p.mode == "open" else "-",
                      "yes" if p.valid else "NO")
    console = Console()
    console.print(table)
    for p in points:
        if not p.valid:
            console.print(f"invalid {p.mode} {p.load}: " + "; ".join(p.invalid_reasons))
    console.print(summary_line(measured))
