"""TorchServe under the Docker launcher (official image, ports published on 127.0.0.1): runs only where
a Docker engine and the pinned image exist; here it is skipped with the reason."""
from __future__ import annotations

import numpy as np
import pytest

from core.config import ServeSettings
from serving.base import NotAvailable
from serving.launchers.docker import DockerLauncher
from serving.torchserve.server import TorchServe

pytestmark = [pytest.mark.docker, pytest.mark.integration]


@pytest.fixture(scope="module")
def docker_ready():
    try:
        DockerLauncher().check(TorchServe, ServeSettings())
    except NotAvailable as exc:
        pytest.skip(f"{exc.reason} (enable: {exc.enable_command})")


def test_torchserve_in_docker_answers_on_loopback_and_is_removed(docker_ready, request):
    from serving.clients import make_client
    from serving.launchers import docker as docker_launcher
    from serving.testing import running_torchserve

    spine_run = request.getfixturevalue("spine_run")  # only once we know the test can run
    data = np.load(spine_run.heldout("mlp"))
    with running_torchserve(spine_run, formats=("torchscript",), launcher="docker") as server:
        for ep in server.endpoints():
            with make_client(ep) as client:
                np.testing.assert_allclose(client.predict(data["x"][:4]), data["logits_ref"][:4], atol=1e-4)
        container = server.handle.container
    assert not docker_launcher._LIVE
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        container.reload()  # removed
