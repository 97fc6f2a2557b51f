"""TF Serving: configs rendered from protos, the server behind the lifecycle ABC, its clients."""
