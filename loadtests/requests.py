"""The request bytes a load generator sends, built once before the load with the serving clients'
encoders (`Client.request_bytes`): the REST JSON body, TorchServe's `PredictionsRequest` from the stubs
compiled from its jar's protos (`deploy_compare.serving.grpc_stubs`), TF Serving's `PredictRequest` from
tensorflow-serving-api's `predict_pb2`. The orchestrator builds them and hands them to locust in the
plan, so the locust process sends opaque bytes and never imports TensorFlow."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deploy_compare.core.kinds import Protocol
from deploy_compare.serving.clients import make_client
from deploy_compare.serving.clients.rest import request_body
from deploy_compare.serving.endpoint import Endpoint


def wire_requests(endpoint: Endpoint, batches: Sequence[np.ndarray]) -> list[bytes]:
    """One request per batch (already in the endpoint's layout)."""
    if endpoint.protocol == Protocol.REST:  # every REST endpoint (also null / external) takes the same body
        return [request_body(b) for b in batches]
    with make_client(endpoint) as client:
        return [client.request_bytes(b) for b in batches]
