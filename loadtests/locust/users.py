"""The user classes, one protocol per locustfile: closed-loop users, each with its own sender
(connection) sending the pre-serialized requests of `options.config()`."""
from __future__ import annotations

import locust

import deploy_compare.loadtests.locust.process  # noqa: F401  (wires the harness into this locust process)
from deploy_compare.loadtests.locust.options import config

# how long the sole user of a process sends with kernel waits before it lets the loop run once (the
# controller's 50 ms polls, locust's stats and heartbeats, a spawn of more users wait at most this long)
EXCLUSIVE_SLICE_S = 0.005


class _SenderUser(locust.User):
    abstract = True
    sender_kind = "rest"

    def on_start(self) -> None:
        self.sender = config().make_sender(self.environment)

    @locust.task
    def predict(self) -> None:
        # one task that never returns: locust's task scheduling (pick, wait_time, sleep(0)) would otherwise
        # run between every two requests, on the generator's core, inside the next request's latency when
        # users share the core; the user ends when locust kills its greenlet (at a yield)
        send = self.sender.send
        exclusive = getattr(self.sender, "send_exclusive", None)
        runner = self.environment.runner
        while True:
            if exclusive is not None and runner.user_count == 1:
                exclusive(EXCLUSIVE_SLICE_S)  # the process's only user: kernel waits, then one yield
            else:
                send()


class TorchServeGrpcUser(_SenderUser):
    """Closed-loop user calling TorchServe's gRPC inference API (one channel per user)."""
    sender_kind = "grpc-torchserve"
    abstract = False


class TfServingGrpcUser(_SenderUser):
    """Closed-loop user calling TF Serving's PredictionService.Predict (one channel per user)."""
    sender_kind = "grpc-tfserving"
    abstract = False


class RestUser(_SenderUser):
    """Closed-loop user POSTing pre-serialized {"instances": ...} bodies (TF Serving or TorchServe REST) over
    one kept-alive socket (`deploy_compare.loadtests.rawhttp`; https endpoints go through locust's FastHttpSession)."""
    sender_kind = "rest"
    abstract = False
