"""Where Ray Serve's per-request time goes here (docs/ray-serve.md, "Why is Ray Serve slower per request?").

Ray Serve (natively, on loopback in Ray's single-node mode) and TorchServe serve the same mlp ONNX artifact at the
same time, both pinned to the server core as in a run; a client on the other core sends one request at a time
over a kept-alive HTTP connection, alternating short windows between the two servers (conventions rule 15). For
each window it records the client's p50 and, for Ray Serve, the means of Ray's own latency histograms over the
window: the HTTP proxy (whole request inside Ray), the ingress replica and the model replica. One Ray Serve
start per variant of Ray's settings; every variant's settings are printed with its figures and written as JSON.

    .venv/bin/python scripts/ray-latency-probe.py                    # every variant, 6 windows of 3 s each
    .venv/bin/python scripts/ray-latency-probe.py --variants default throughput-optimized --out probe.json

Native Ray Serve opens listeners Ray cannot keep on loopback ([::] for its gRPC servers): this script sets
`allow_public_bind`, as `deploy-compare serve --servers rayserve --launcher native --allow-public-bind` does;
the traffic it sends stays on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

# Ray Serve's settings a user would try for latency (docs.ray.io, Serve "Performance Tuning", read 2026-12-03);
# "unpinned" lets every Ray process use both cores (the servers are otherwise pinned to core 0, as TorchServe)
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "no-user-code-thread": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"},
    "no-router-loop": {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"},
    "throughput-optimized": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "unpinned": {},
}
HISTOGRAMS = {"proxy": "ray_serve_http_request_latency_ms", "replica": "ray_serve_deployment_processing_latency_ms"}


def build_run(root: Path):
    """mlp trained briefly and exported to ONNX from PyTorch: what both servers serve."""
    from deploy_compare.app.pipeline import RunContext, run_pipeline
    from deploy_compare.core.config import QUICK, ExportSettings, RunConfig, TrainSettings
    from deploy_compare.core.rundir import RunDir

    profile = replace(QUICK, name="probe", train=TrainSettings(twins=("mlp",), epochs=2),
                      export=ExportSettings(exclude=("*/aoti", "*/torch-export", "*/tflite*", "*/savedmodel",
                                                     "*/onnx-tf", "*/litert-torch", "*/onnx2tf")))
    config = RunConfig(profile=profile, run_id="probe", results_root=root, stages=("train", "export"))
    run_dir = RunDir(config.run_dir).create()
    run_pipeline(RunContext(config=config, run_dir=run_dir))
    return run_dir


def histogram_means(url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of Ray's latency histograms now, per part (proxy; replica per deployment)."""
    from deploy_compare.serving.metrics import scrape

    out: dict[str, tuple[float, float]] = {}
    for s in scrape(url):
        for part, name in HISTOGRAMS.items():
            for suffix, i in (("_sum", 0), ("_count", 1)):
                if s.name == name + suffix:
                    key = part if part == "proxy" else f"replica {s.labels.get('deployment', '?')}"
                    pair = list(out.get(key, (0.0, 0.0)))
                    pair[i] += s.value
                    out[key] = (pair[0], pair[1])
    return out


def window(target: str, headers: dict[str, str], body: bytes, seconds: float) -> list[float]:
    """One request at a time for `seconds`; each request's latency in ms."""
    url = urlsplit(target)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    latencies: list[float] = []
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            conn.request("POST", url.path, body=body, headers={"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{target} answered {resp.status}")
            latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return latencies


def probe(run_dir, variant: str, windows: int, seconds: float) -> dict:
    from deploy_compare.core.config import ServeSettings
    from deploy_compare.serving.stacks import import_servers, plan_server

    import_servers()
    base = ServeSettings(launcher="native", twins=("mlp",), formats=("onnx-torch",), allow_public_bind=True)
    servers = {}
    try:
        for name in ("rayserve", "torchserve"):
            settings = replace(base, pin_server_cpu=None) if variant == "unpinned" and name == "rayserve" else base
            planned = plan_server(name, run_dir, settings, ["onnx-torch"])
            if planned.server is None:
                raise RuntimeError(f"{name} cannot run: {planned.not_run}")
            server = planned.server
            if name == "rayserve":
                server.ray_settings.update(VARIANTS[variant])
            servers[name] = server
            t0 = time.monotonic()
            server.start()
            server.wait_ready(600)
            print(f"  {name} ready in {time.monotonic() - t0:.1f} s", flush=True)
        rest = {n: next(e for e in s.endpoints() if e.protocol == "rest") for n, s in servers.items()}
        body = json.dumps({"instances": [[0.5] * 64]}).encode()
        metrics_url = servers["rayserve"].metrics_url()
        for ep in rest.values():  # warm-up, excluded
            window(ep.target, ep.headers, body, 2.0)
        rows: dict[str, list] = {"rayserve": [], "torchserve": []}
        for w in range(windows):
            order = ["rayserve", "torchserve"] if w % 2 == 0 else ["torchserve", "rayserve"]
            for n in order:
                before = histogram_means(metrics_url) if n == "rayserve" and metrics_url else {}
                lat = window(rest[n].target, rest[n].headers, body, seconds)
                time.sleep(1.2 if before else 0)  # Ray pushes its metrics every second here
                after = histogram_means(metrics_url) if before else {}
                delta = {k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1])
                         for k in after}
                parts = {k: round(total / count, 3) for k, (total, count) in delta.items() if count > 0}
                rows[n].append({"p50_ms": round(statistics.median(lat), 3), "n": len(lat), "ray_means_ms": parts})
        ratios = [r["p50_ms"] / t["p50_ms"] for r, t in zip(rows["rayserve"], rows["torchserve"], strict=True)]
        return {"variant": variant, "ray_settings": VARIANTS[variant],
                "ray_env": servers["rayserve"].config.ray_env() if servers["rayserve"].config else {},
                "ray_pinned": variant != "unpinned", "windows": rows,
                "p50_ms": {n: statistics.median(r["p50_ms"] for r in v) for n, v in rows.items()},
                "ratio_per_window": [round(x, 2) for x in ratios]}
    finally:
        for s in servers.values():
            s.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--windows", type=int, default=6, help="windows per server and variant (default 6)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one window (default 3 s)")
    parser.add_argument("--out", type=Path, default=Path("ray-latency-probe.json"), help="where the JSON goes")
    args = parser.parse_args()
    from deploy_compare.core import proc

    proc.install_signal_handlers()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # the client on the last core, servers on core 0
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="ray-probe-") as tmp:
            run_dir = build_run(Path(tmp))
            for v in args.variants:
                print(f"variant {v}: {VARIANTS[v] or 'Serve defaults'}", flush=True)
                r = probe(run_dir, v, args.windows, args.seconds)
                results.append(r)
                p50, last = r["p50_ms"], r["windows"]["rayserve"][-1]["ray_means_ms"]
                print(f"  p50 Ray Serve {p50['rayserve']:.2f} ms, TorchServe {p50['torchserve']:.2f} ms, ratio per "
                      f"window {r['ratio_per_window']}; Ray's means (last window) {last}", flush=True)
                args.out.write_text(json.dumps(results, indent=1))
    finally:
        proc.stop_all()
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
