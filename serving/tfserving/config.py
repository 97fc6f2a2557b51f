"""TF Serving's config files, rendered from protos with `text_format` (never by string pasting):
`--model_config_file` (ModelServerConfig, from tensorflow-serving-api), `--batching_parameters_file`
(BatchingParameters) and `--monitoring_config_file` (MonitoringConfig with the Prometheus endpoint)."""
from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import text_format

from deploy_compare.serving.tfserving.protos import messages

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
MODEL_VERSION = 1


@dataclass(frozen=True)
class BatchingSettings:
    max_batch_size: int
    batch_timeout_micros: int
    num_batch_threads: int
    max_enqueued_batches: int = 100


def model_config(models: dict[str, str]) -> str:
    """ModelServerConfig text for {served name: base path as the server sees it}."""
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    for name, base_path in sorted(models.items()):
        entry = cfg.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
        entry.model_version_policy.specific.versions.append(MODEL_VERSION)
    return text_format.MessageToString(cfg)


def batching_parameters(b: BatchingSettings) -> str:
    msg = messages().BatchingParameters()
    msg.max_batch_size.value = b.max_batch_size
    msg.batch_timeout_micros.value = b.batch_timeout_micros
    msg.num_batch_threads.value = b.num_batch_threads
    msg.max_enqueued_batches.value = b.max_enqueued_batches
    return text_format.MessageToString(msg)


def monitoring_config(path: str = PROMETHEUS_PATH) -> str:
    msg = messages().MonitoringConfig()
    msg.prometheus_config.enable = True
    msg.prometheus_config.path = path
    return text_format.MessageToString(msg)
