"""Serving: server lifecycle (`base`), launchers (native process, Docker), TorchServe and TF Serving,
their clients (REST and gRPC) and the serve stage."""
