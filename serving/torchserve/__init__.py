"""TorchServe: archives, per-run config.properties, the handler packaged into every .mar, the server."""
