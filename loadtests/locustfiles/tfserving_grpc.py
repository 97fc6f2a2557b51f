"""gRPC load on TF Serving's PredictionService/Predict (one float32 input tensor, `--input-name`).

    locust -f loadtests/locustfiles/tfserving_grpc.py --host 127.0.0.1:8500 \\
        --model-name mlp --input-name inputs --payload results/<run-id> --twin mlp
"""
from deploy_compare.loadtests.locust.users import TfServingGrpcUser  # noqa: F401  (the user class locust runs)
