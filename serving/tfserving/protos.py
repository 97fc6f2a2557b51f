"""Message classes for the two TF Serving config files whose protos the `tensorflow-serving-api` wheel does not
ship: `MonitoringConfig` (tensorflow_serving/config/monitoring_config.proto) and `BatchingParameters`
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto).

The upstream .proto files are vendored with their licence in `proto/` (session_bundle_config.proto trimmed to
BatchingParameters, the minimal set that compiles; see its header) and compiled with grpcio-tools into a
descriptor set in the user's cache folder (`deploy_compare.serving.protoc`), loaded into a pool of our own.
`text_format` then renders and validates them like any other proto: a misspelt field or a wrong type fails here,
not in the server. `ModelServerConfig` comes from the wheel itself
(`tensorflow_serving.config.model_server_config_pb2`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

VENDORED = Path(__file__).with_name("proto")
FILES = ("tensorflow_serving/config/monitoring_config.proto",
         "tensorflow_serving/servables/tensorflow/session_bundle_config.proto")
MESSAGES = ("MonitoringConfig", "PrometheusConfig", "BatchingParameters")


@lru_cache(maxsize=1)
def messages() -> SimpleNamespace:
    """`.MonitoringConfig`, `.PrometheusConfig`, `.BatchingParameters` message classes (own pool)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    from deploy_compare.serving.protoc import DESCRIPTORS, compile_protos

    out = compile_protos("tfserving-config", {f: (VENDORED / f).read_bytes() for f in FILES}, python=False)
    files = descriptor_pb2.FileDescriptorSet.FromString((out / DESCRIPTORS).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:  # dependencies first (protoc's order)
        pool.Add(f)
    return SimpleNamespace(**{name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"tensorflow.serving.{name}")) for name in MESSAGES})
