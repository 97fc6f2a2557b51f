"""REST client for both servers: TF Serving's documented predict body (row format)
`{"instances": [...]}` -> `{"predictions": [...]}`, POSTed to the endpoint's URL
(TF Serving: /v1/models/<name>:predict; TorchServe: /predictions/<name> through our handler)."""
from __future__ import annotations

import json

import numpy as np
import requests

from deploy_compare.serving.clients.base import Client, PredictError
from deploy_compare.serving.endpoint import Endpoint


def request_body(x: np.ndarray) -> bytes:
    return json.dumps({"instances": np.asarray(x).tolist()}, separators=(",", ":")).encode("utf-8")


def parse_response(endpoint: Endpoint, status: int, body: bytes) -> np.ndarray:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise PredictError(endpoint, status, f"answer is not JSON: {body[:200]!r}") from None
    if status != 200 or not isinstance(data, dict) or "predictions" not in data:
        message = data.get("error") or data.get("message") if isinstance(data, dict) else None
        raise PredictError(endpoint, status, str(message or data))
    return np.asarray(data["predictions"], dtype=np.float32)


class RestClient(Client):
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        super().__init__(endpoint, timeout)
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json", **endpoint.headers})

    def encode(self, x: np.ndarray) -> bytes:
        return request_body(x)

    def send(self, payload: bytes) -> np.ndarray:
        resp = self.session.post(self.endpoint.target, data=payload, timeout=self.timeout)
        return parse_response(self.endpoint, resp.status_code, resp.content)

    def close(self) -> None:
        self.session.close()
