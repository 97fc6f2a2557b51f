"""REST load: POST {"instances": ...} to a TF Serving-style (/v1/models/M:predict, `--api tfserving`)
or TorchServe (/predictions/M, `--api torchserve`) endpoint; payload from real data (`--payload`).

    locust -f loadtests/locustfiles/rest.py --host http://127.0.0.1:8080 --api torchserve \\
        --model-name mlp --payload results/<run-id> --twin mlp --token-file key_file.json
"""
from deploy_compare.loadtests.locust.users import RestUser  # noqa: F401  (the user class locust runs)
