"""Clients for served models: one small interface (`Client.predict(batch) -> logits`), one module per
server/protocol, looked up by `make_client(endpoint)`."""
from deploy_compare.serving.clients.base import CLIENTS, Client, PredictError, make_client

__all__ = ["CLIENTS", "Client", "PredictError", "make_client"]
