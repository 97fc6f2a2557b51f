"""Locustfiles a user runs directly, one protocol each (see loadtests/locust/options.py for the options):

    locust -f loadtests/locustfiles/rest.py --host http://127.0.0.1:8080 --api torchserve \\
        --model-name mlp --payload results/<run-id> --twin mlp
"""
