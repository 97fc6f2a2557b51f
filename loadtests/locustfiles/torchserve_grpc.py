"""gRPC load on TorchServe's inference API (InferenceAPIsService/Predictions, input["data"] = JSON body).

    locust -f loadtests/locustfiles/torchserve_grpc.py --host 127.0.0.1:7070 \\
        --model-name mlp --payload results/<run-id> --twin mlp --token-file key_file.json
"""
from deploy_compare.loadtests.locust.users import TorchServeGrpcUser  # noqa: F401  (the user class locust runs)
