"""The CI scripts fail when they cannot get what the tests need, instead of letting those tests skip: without a
Docker engine `scripts/docker-engine.sh start` exits 1 (and stops the dockerd it started), and `.ci/run` stops
there. The engine is made unavailable without touching the machine's: DOCKER_HOST names a socket nothing listens
on, the daemon is a stand-in (DEPLOY_COMPARE_DOCKERD) and the pid file is the test's own. scripts/hide-tools.sh
hides the optional tools from PATH and nothing else."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def _engine_env(tmp_path: Path, daemon: str) -> dict[str, str]:
    fake = tmp_path / "fake-dockerd"
    fake.write_text(f"#!/bin/sh\n{daemon}\n")
    fake.chmod(0o755)
    return {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "DEPLOY_COMPARE_DOCKERD": str(fake),
            "DEPLOY_COMPARE_DOCKERD_PIDFILE": str(tmp_path / "dockerd.pid"), "DEPLOY_COMPARE_DOCKERD_WAIT_S": "2"}


def _not_root(out: subprocess.CompletedProcess) -> bool:
    return os.geteuid() != 0 and "not root" in out.stderr


def test_engine_script_fails_when_dockerd_exits(tmp_path):
    out = subprocess.run([str(ROOT / "scripts" / "docker-engine.sh"), "start"], capture_output=True, text=True,
                         env=_engine_env(tmp_path, "echo cannot start >&2; exit 3"), timeout=60)
    assert out.returncode == 1, out
    assert _not_root(out) or "exited with status 3 before answering" in out.stderr, out.stderr
    assert not (tmp_path / "dockerd.pid").exists()


def test_engine_script_stops_a_dockerd_that_never_answers(tmp_path):
    out = subprocess.run([str(ROOT / "scripts" / "docker-engine.sh"), "start"], capture_output=True, text=True,
                         env=_engine_env(tmp_path, f"exec python3 -c 'import time; time.sleep(300)' {tmp_path}"),
                         timeout=60)
    assert out.returncode == 1, out
    assert _not_root(out) or "did not answer within 2 s and was stopped" in out.stderr, out.stderr
    left = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert left == [] and not (tmp_path / "dockerd.pid").exists()


def test_ci_run_fails_when_no_engine_can_be_had(tmp_path):
    out = subprocess.run([str(ROOT / ".ci" / "run")], capture_output=True, text=True,
                         env=_engine_env(tmp_path, "exit 1"), timeout=60)
    assert out.returncode != 0, out
    assert "docker engine:" in out.stderr and "make" not in out.stdout, out


def test_hide_tools_hides_only_the_optional_tools():
    out = subprocess.run([str(ROOT / "scripts" / "hide-tools.sh"), "sh", "-c",
                          'for t in docker dockerd docker-compose wrk h2load chromium busybox sh ls; do '
                          'command -v $t >/dev/null && echo "$t"; done; echo "$DOCKER_HOST"'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    *found, host = out.stdout.split()
    assert found == ["sh", "ls"] and host.startswith("unix://") and host.endswith("/no-docker-engine.sock")


def test_only_allowed_skips_fails_a_session_that_skips_for_a_missing_tool(tmp_path):
    """tests/conftest.py as a plugin on two tiny sessions: an opt-in skip passes, a missing tool's skip fails."""
    (tmp_path / "test_opt_in.py").write_text("import pytest\n\ndef test_x():\n"
                                             "    pytest.skip('opt-in (SET_ME=1): runs only when asked')\n")
    (tmp_path / "test_missing.py").write_text("import pytest\n\ndef test_y():\n"
                                              "    pytest.skip('wrk is not installed')\n")

    def session(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                               "--only-allowed-skips", str(tmp_path / name)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)

    allowed, refused = session("test_opt_in.py"), session("test_missing.py")
    assert allowed.returncode == 0 and "1  [allowed] opt-in (SET_ME=1)" in allowed.stdout, allowed.stdout
    assert refused.returncode == 1 and "1  [NOT ALLOWED] wrk is not installed" in refused.stdout, refused.stdout
    assert "--only-allowed-skips: 1 skip(s) for a reason outside" in refused.stdout
