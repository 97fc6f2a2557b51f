"""TorchServe's `config.properties`, rendered per run from typed settings.

Safe defaults: every address on the launcher's bind host (127.0.0.1 natively), token
authorization on (TorchServe writes `key_file.json` in its working directory; clients read it),
model-control API off, `allowed_urls` limited to this run's model store, no per-model pip installs,
no config from environment variables. Workers, netty threads, batch size and delay, queue size and
request size limits are explicit, so the recorded settings are the ones the server ran with.

Server-side accounting (`metrics.yaml`, written beside config.properties): TorchServe's default config
exposes its per-request times (QueueTime, WorkerThreadTime, HandlerTime, PredictionTime) as Prometheus
*gauges*, i.e. only the last request's value. Declared as histograms here, the metrics endpoint gives
their `_sum` and `_count`, so a window's per-request mean is a difference of two scrapes, for gRPC too
(TorchServe 0.12 does not time gRPC requests in its `ts_*_microseconds` counters).

Logging (`log4j2.xml`, passed with `--log-config`): TorchServe's default config logs every request
about a dozen times (frontend DEBUG and INFO lines to `ts_log.log`, twice, and to stdout; the worker's
stdout to `model_log.log`; the access log to both files and stdout), each a synchronous write on the
server's core, and gzips a log file on that core whenever it reaches 100 MB. Measured here (TorchServe
0.12, mlp-onnx over REST, 1 connection, server pinned to one core): about 1 MB of log per second at
1,400 req/s (a 35-minute run left a 1.4 GB stdout log), and each gzip of a rolled `ts_log` took 0.24-0.47 s
of the server's core, halving throughput for 1-2 s at a time it does not choose. `SERVING_LOG4J2`
keeps what a production server keeps (the access log, one line per request; startup, warnings and
errors) and drops the per-request debug and progress lines; rolled files are renamed, not compressed.
`--server-logging default` (`ServeSettings.server_logging`) runs TorchServe's own config instead, to measure
what it costs.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TorchServeConfig:
    bind_host: str
    ports: dict[str, int]  # inference, management, metrics, grpc_inference, grpc_management
    model_store: str  # as the server sees it
    models: dict[str, str]  # served name -> .mar file name
    workers: int
    netty_threads: int
    batch_size: int
    max_batch_delay_ms: int
    response_timeout_s: int = 120
    # how long a worker may take to start (import its framework, load its model) before TorchServe kills and
    # restarts it: every worker shares the server's core, seven of them took longer than TorchServe's 120 s
    # default in a container on a loaded machine; the launcher's readiness wait is the bound that reports it
    startup_timeout_s: int = 120
    job_queue_size: int = 100
    max_request_size: int = 16 * 1024 * 1024  # bytes; larger bodies get 413 from the frontend
    max_response_size: int = 16 * 1024 * 1024
    token_expiration_min: int = 24 * 60
    metrics_config: str = ""  # path of metrics.yaml as the server sees it ("" = TorchServe's default config)

    def allowed_urls(self) -> str:
        """Regex of model URLs TorchServe may load: .mar files of this run's model store only."""
        return "file://" + re.escape(self.model_store.rstrip("/")) + r"/[^/]+\.mar"

    def model_entries(self) -> dict[str, dict[str, dict[str, object]]]:
        return {name: {"1.0": {"defaultVersion": True, "marName": mar, "minWorkers": self.workers,
                               "maxWorkers": self.workers, "batchSize": self.batch_size,
                               "maxBatchDelay": self.max_batch_delay_ms,
                               "responseTimeout": self.response_timeout_s,
                               "startupTimeout": self.startup_timeout_s}}
                for name, mar in sorted(self.models.items())}

    def properties(self) -> dict[str, str]:
        h, p = self.bind_host, self.ports
        return {
            "inference_address": f"http://{h}:{p['inference']}",
            "management_address": f"http://{h}:{p['management']}",
            "metrics_address": f"http://{h}:{p['metrics']}",
            "grpc_inference_address": h,
            "grpc_inference_port": str(p["grpc_inference"]),
            "grpc_management_address": h,
            "grpc_management_port": str(p["grpc_management"]),
            "model_store": self.model_store,
            "load_models": ",".join(sorted(self.models.values())),
            "models": json.dumps(self.model_entries(), separators=(",", ":")),
            "default_workers_per_model": str(self.workers),
            "number_of_netty_threads": str(self.netty_threads),
            "netty_client_threads": str(self.netty_threads),
            "job_queue_size": str(self.job_queue_size),
            "default_response_timeout": str(self.response_timeout_s),
            "default_startup_timeout": str(self.startup_timeout_s),
            "max_request_size": str(self.max_request_size),
            "max_response_size": str(self.max_response_size),
            "disable_token_authorization": "false",
            "token_expiration_min": str(self.token_expiration_min),
            "enable_model_api": "false",
            "allowed_urls": self.allowed_urls(),
            "install_py_dep_per_model": "false",
            "enable_envvars_config": "false",
            "metrics_mode": "prometheus",
            "enable_metrics_api": "true",
            "disable_system_metrics": "true",
        } | ({"metrics_config": self.metrics_config} if self.metrics_config else {})

    def render(self) -> str:
        lines = ["# written by deploy-compare for one run; see serving/torchserve/config.py"]
        lines += [f"{key}={_escape(value)}" for key, value in self.properties().items()]
        return "\n".join(lines) + "\n"

    def record(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "models"} | {"served_models": sorted(self.models)}


# Per-request times as histograms (sum and count per scrape); the request counters stay counters. Names,
# units and dimensions are TorchServe's own (ts/configs/metrics.yaml of 0.12), only the types differ.
METRICS_YAML = """\
dimensions:
  - &model_name "ModelName"
  - &worker_name "WorkerName"
  - &level "Level"
  - &hostname "Hostname"

ts_metrics:
  counter:
    - {name: Requests2XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: Requests4XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: Requests5XX, unit: Count, dimensions: [*level, *hostname]}
    - {name: ts_inference_requests_total, unit: Count, dimensions: ["model_name", "model_version", "hostname"]}
    - {name: ts_inference_latency_microseconds, unit: Microseconds,
       dimensions: ["model_name", "model_version", "hostname"]}
    - {name: ts_queue_latency_microseconds, unit: Microseconds,
       dimensions: ["model_name", "model_version", "hostname"]}
  histogram:
    - {name: QueueTime, unit: Milliseconds, dimensions: [*level, *hostname]}
    - {name: WorkerThreadTime, unit: Milliseconds, dimensions: [*level, *hostname]}
  gauge:
    - {name: WorkerLoadTime, unit: Milliseconds, dimensions: [*worker_name, *level, *hostname]}

model_metrics:
  histogram:
    - {name: HandlerTime, unit: ms, dimensions: [*model_name, *level]}
    - {name: PredictionTime, unit: ms, dimensions: [*model_name, *level]}
"""


# TorchServe's appenders (frontend/server/src/main/resources/log4j2.xml of 0.12), each logger writing once
# (additivity off where the default wrote a line twice); rolled files are renamed, not gzipped on the server's core
_ROLLING = """\
    <RollingFile name="{name}" fileName="${{env:{env}:-logs}}/{name}.log"
                 filePattern="${{env:{env}:-logs}}/{name}.%i.log">
      <PatternLayout pattern="{pattern}"/>
      <Policies><SizeBasedTriggeringPolicy size="100 MB"/></Policies>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>"""
_FULL, _SHORT = "%d{ISO8601} [%-5p] %t %c - %m%n", "%d{ISO8601} - %m%n"
SERVING_LOG4J2 = "\n".join([
    '<?xml version="1.0" encoding="UTF-8"?>',
    "<!-- written by deploy-compare: see serving/torchserve/config.py -->",
    "<Configuration>", "  <Appenders>",
    f'    <Console name="STDOUT" target="SYSTEM_OUT"><PatternLayout pattern="{_FULL}"/></Console>',
    *(_ROLLING.format(name=name, env=env, pattern=pattern) for name, env, pattern in (
        ("access_log", "LOG_LOCATION", _SHORT), ("model_log", "LOG_LOCATION", _FULL),
        ("ts_log", "LOG_LOCATION", _FULL), ("model_metrics", "METRICS_LOCATION", _SHORT),
        ("ts_metrics", "METRICS_LOCATION", _SHORT))),
    "  </Appenders>", "  <Loggers>",
    # one line per request, as a production server keeps it
    '    <Logger name="ACCESS_LOG" level="info" additivity="false"><AppenderRef ref="access_log"/></Logger>',
    # the worker's stdout: its per-request INFO lines dropped, its warnings and errors kept
    '    <Logger name="MODEL_LOG" level="warn" additivity="false"><AppenderRef ref="model_log"/></Logger>',
    '    <Logger name="MODEL_METRICS" level="all" additivity="false"><AppenderRef ref="model_metrics"/></Logger>',
    '    <Logger name="TS_METRICS" level="all" additivity="false"><AppenderRef ref="ts_metrics"/></Logger>',
    '    <Logger name="io.netty" level="error"/>',
    '    <Logger name="org.apache" level="off"/>',
    # startup, model loading, warnings and errors; the worker manager's per-request lines are INFO
    '    <Logger name="org.pytorch.serve" level="info"/>',
    '    <Logger name="org.pytorch.serve.wlm" level="warn"/>',
    '    <Logger name="org.pytorch.serve.wlm.ModelManager" level="info"/>',
    '    <Root level="info"><AppenderRef ref="STDOUT"/><AppenderRef ref="ts_log"/></Root>',
    "  </Loggers>", "</Configuration>", ""])


def _escape(value: str) -> str:
    """Java .properties value escaping (backslash is the escape character)."""
    return value.replace("\\", "\\\\")


def parse_properties(text: str) -> dict[str, str]:
    """Read back a rendered file the way java.util.Properties does for our values (for tests)."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = re.sub(r"\\(.)", r"\1", value)
    return out
