"""Message classes for the two TF Serving config files whose protos the `tensorflow-serving-api`
wheel does not ship: `MonitoringConfig` (tensorflow_serving/config/monitoring_config.proto) and
`BatchingParameters` (tensorflow_serving/servables/tensorflow/session_bundle_config.proto).

They are built here as descriptors with the upstream package, message names, field names, numbers
and types (fields we do not use are left out; text format is keyed by field name, so a file we write
is read identically by the server). `text_format` then renders and validates them like any other
proto: a misspelt field or a wrong type fails here, not in the server. `ModelServerConfig` comes
from the wheel itself (`tensorflow_serving.config.model_server_config_pb2`).
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

F = descriptor_pb2.FieldDescriptorProto

# (message, [(field, number, type, label, type_name)]) exactly as upstream names and numbers them.
_MESSAGES = {
    "tensorflow_serving/config/monitoring_config.proto": [
        ("PrometheusConfig", [("enable", 1, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
                              ("path", 2, F.TYPE_STRING, F.LABEL_OPTIONAL, None)]),
        ("MonitoringConfig", [("prometheus_config", 1, F.TYPE_MESSAGE, F.LABEL_OPTIONAL,
                               ".tensorflow.serving.PrometheusConfig")]),
    ],
    "tensorflow_serving/servables/tensorflow/session_bundle_config.proto": [
        ("BatchingParameters", [
            ("max_batch_size", 1, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
            ("batch_timeout_micros", 2, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
            ("max_enqueued_batches", 3, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
            ("num_batch_threads", 4, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
            ("thread_pool_name", 5, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
            ("allowed_batch_sizes", 6, F.TYPE_INT64, F.LABEL_REPEATED, None),
            ("pad_variable_length_inputs", 7, F.TYPE_BOOL, F.LABEL_OPTIONAL, None)]),
    ],
}


@lru_cache(maxsize=1)
def messages() -> SimpleNamespace:
    """`.MonitoringConfig`, `.PrometheusConfig`, `.BatchingParameters` message classes (own pool)."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    classes = {}
    for filename, msgs in _MESSAGES.items():
        fdp = descriptor_pb2.FileDescriptorProto(name=filename, package="tensorflow.serving", syntax="proto3")
        if any(t for _, fields in msgs for *_, t in fields if t and t.startswith(".google")):
            fdp.dependency.append(wrappers.name)
        for msg_name, fields in msgs:
            msg = fdp.message_type.add(name=msg_name)
            for name, number, ftype, label, type_name in fields:
                field = msg.field.add(name=name, number=number, type=ftype, label=label)
                if type_name:
                    field.type_name = type_name
        pool.Add(fdp)
        for msg_name, _ in msgs:
            classes[msg_name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(f"tensorflow.serving.{msg_name}"))
    return SimpleNamespace(**classes)
