"""The shared `torchserve_mlp` fixture works: ready, REST + gRPC answer like the reference."""
import numpy as np
import pytest

from deploy_compare.serving.clients import make_client

pytestmark = pytest.mark.integration


def test_torchserve_mlp_fixture_answers_over_rest_and_grpc(torchserve_mlp, spine_run):
    data = np.load(spine_run.heldout("mlp"))
    endpoints = torchserve_mlp.endpoints()
    assert {e.protocol for e in endpoints} == {"rest", "grpc"}
    for ep in endpoints:
        with make_client(ep) as client:
            logits = client.predict(data["x"][:8])
        np.testing.assert_allclose(logits, data["logits_ref"][:8], atol=1e-4)
