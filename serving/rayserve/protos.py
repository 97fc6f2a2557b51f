"""TF Serving's gRPC protos for Ray Serve's proxy and ingress, without TensorFlow.

`tensorflow_serving.apis` imports generated `tensorflow.core.framework.*_pb2` modules, and importing those
runs `tensorflow/__init__.py` (all of TensorFlow): measured here, seconds of a loaded core and ~500 MB in each
of the two processes that only relay messages, and the first gRPC request timed out (30 s) while the
ingress imported it. When TensorFlow is not imported yet, `tensorflow` is entered as a bare namespace
package over the installed folder, so only the generated protobuf modules load (0.6 s, ~33 MB). Only
these two Ray actors do it; the model replicas that run TensorFlow import it normally.

The proxy imports the servicer function by its path (`gRPCOptions.grpc_servicer_functions`), so the path
names this module: `deploy_compare.serving.rayserve.protos.add_PredictionServiceServicer_to_server`.
"""
from __future__ import annotations

import importlib.util
import sys
import types


def _protos_only() -> None:
    if "tensorflow" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("tensorflow is not installed: TF Serving's protos (tensorflow-serving-api) need "
                                  "its generated modules")
    package = types.ModuleType("tensorflow", "namespace over the installed tensorflow: generated protos only")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflow"] = package


_protos_only()

from tensorflow_serving.apis import predict_pb2  # noqa: E402
from tensorflow_serving.apis.prediction_service_pb2_grpc import add_PredictionServiceServicer_to_server  # noqa: E402

__all__ = ["add_PredictionServiceServicer_to_server", "predict_pb2"]
