"""Ray Serve behind the `Server` lifecycle: one deployment per fp32 artifact behind one ingress that
speaks TF Serving's REST and gRPC APIs (see `server.py`, `app.py`, `main.py`)."""
