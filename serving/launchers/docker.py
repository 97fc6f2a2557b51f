"""Docker launcher: the server's image (`Server.image`: built here by `make images`, or an official
pinned tag) through the `docker` Python SDK.

Same configs and ports as native: each port is published on 127.0.0.1 only (same number inside and
outside), the server binds 0.0.0.0 inside its own network namespace, configs and the model store are
bind-mounted (read-only unless the server must write there), the container runs as the calling user
(as the images' unprivileged uid 1000 when the caller is root, with its writable mounts handed to that
uid) and is pinned with `cpuset_cpus`. Containers are removed on every exit path: `stop()`, the serve
stage's `finally`, and an `atexit` hook for anything still tracked. Images are never pulled here (the
toolkit does no downloads at run time): a missing image is reported with the command that makes it.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from deploy_compare.core import ownership
from deploy_compare.serving.base import LAUNCHERS, Handle, Launcher, LaunchSpec, NotAvailable, Server

_LIVE: set[DockerHandle] = set()
UNPRIVILEGED = (1000, 1000)  # the non-root user of the project's images and of the official ones
_LOCK = threading.Lock()


def _client() -> Any:
    import docker  # lazy: only this launcher needs the SDK

    return docker.from_env(timeout=30)


class DockerHandle(Handle):
    def __init__(self, container: Any, log_path: Path, started_at: float) -> None:
        self.container = container
        self.log_path = Path(log_path)
        self.started_at = started_at
        self._removed = False
        self._pump = threading.Thread(target=self._copy_logs, name=f"logs-{container.name}", daemon=True)
        self._pump.start()
        with _LOCK:
            _LIVE.add(self)
        ownership.track_container(container.id, container.name)

    def _copy_logs(self) -> None:
        with open(self.log_path, "ab") as out:
            try:
                for chunk in self.container.logs(stream=True, follow=True):
                    out.write(chunk)
                    out.flush()
            except Exception as exc:  # the container went away: note it in the log, not silently
                out.write(f"\n[deploy-compare] log stream ended: {type(exc).__name__}: {exc}\n".encode())

    def alive(self) -> bool:
        if self._removed:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status in ("created", "running")

    def stop(self, timeout: float) -> None:
        if self._removed:
            return
        try:
            try:
                self.container.stop(timeout=int(timeout))
            finally:
                self.container.remove(force=True)
        except Exception as exc:
            if "No such container" not in str(exc) and "404" not in str(exc):
                raise
        finally:
            self._removed = True
            with _LOCK:
                _LIVE.discard(self)
            ownership.untrack_container(self.container.id)

    def pids(self) -> list[int]:
        import psutil

        try:
            self.container.reload()
            root = psutil.Process(int(self.container.attrs["State"]["Pid"]))
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except Exception:
            return []

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes()[-200_000:].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> dict[str, object]:
        attrs = self.container.attrs
        image = attrs.get("Config", {}).get("Image", "")
        labels = (_client().images.get(image).labels or {}) if image else {}
        return {"container": {"image": image, "image_id": attrs.get("Image", ""),
                              "content_hash": labels.get("deploy-compare.content-hash", ""),
                              "base_source": labels.get("deploy-compare.base-source", ""),
                              "user": attrs.get("Config", {}).get("User", ""),
                              "cpuset": attrs.get("HostConfig", {}).get("CpusetCpus", "")}}

    def memory(self) -> dict[str, int]:
        """The container's cgroup memory: `usage` as the kernel counts it (page cache included) and
        `working_set` = usage - inactive file pages (what `docker stats` shows)."""
        stats = self.container.stats(stream=False).get("memory_stats", {})
        usage = int(stats.get("usage", 0))
        detail = stats.get("stats", {})
        inactive = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)))
        return {"cgroup_usage_bytes": usage, "cgroup_working_set_bytes": max(0, usage - inactive)}


def stop_all_containers(timeout: float = 20.0) -> None:
    with _LOCK:
        live = list(_LIVE)
    for handle in live:
        handle.stop(timeout)


atexit.register(stop_all_containers)


def container_user() -> tuple[int, int]:
    """The calling user, except root: a container never runs as root."""
    return UNPRIVILEGED if os.getuid() == 0 else (os.getuid(), os.getgid())


def hand_over(paths: set[str]) -> None:
    """Give the writable mounts to the container's user when that is not the caller (root caller):
    the caller (root) can still read them, e.g. TorchServe's key file."""
    uid, gid = container_user()
    if (uid, gid) == (os.getuid(), os.getgid()):
        return
    for top in paths:
        for dirpath, _, files in os.walk(top):
            os.chown(dirpath, uid, gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), uid, gid)


def container_kwargs(spec: LaunchSpec) -> dict[str, Any]:
    """The `containers.run` arguments for a spec (pure: unit-tested without an engine)."""
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "name": f"deploy-compare-{spec.name}-{uuid.uuid4().hex[:8]}",
        "detach": True,
        "ports": {f"{port}/tcp": ("127.0.0.1", port) for port in spec.ports.values()},
        "volumes": {str(Path(h).resolve()): {"bind": c, "mode": "rw" if h in spec.writable else "ro"}
                    for h, c in spec.mounts.items()},
        "environment": dict(spec.env),
        "labels": {"deploy-compare": spec.name, **owner_labels()},
        "user": "{}:{}".format(*container_user()),
        # the engine's tini as PID 1, signalling the server's whole process group: a server run as PID 1
        # (`torchserve --foreground`, a Python launcher with default dispositions) never sees SIGTERM, the
        # kernel drops it, so every `docker stop` waited its whole timeout (20 s) and then SIGKILLed
        "init": True,
    }
    kwargs["environment"].setdefault("TINI_KILL_PROCESS_GROUP", "1")
    if spec.container_cwd:
        kwargs["working_dir"] = spec.container_cwd
        kwargs["environment"].setdefault("HOME", spec.container_cwd)  # a uid without a passwd entry has none
    if spec.shm_size:
        kwargs["shm_size"] = spec.shm_size
    if spec.cpus:
        kwargs["cpuset_cpus"] = ",".join(str(c) for c in sorted(spec.cpus))
    return kwargs


OWNER_PID, RUN = "deploy-compare.owner-pid", "deploy-compare.run"


def owner_labels() -> dict[str, str]:
    """Labels naming the command that owns a container (read by `sweep_orphan_containers`)."""
    return {OWNER_PID: str(os.getpid()), RUN: ownership.current_run()}


def sweep_orphan_containers(run: Path | None = None) -> list[str]:
    """Remove the containers labelled with an owner pid that is no longer running (only those of `run`,
    if given); one line per removed container. No reachable engine means no container to remove."""
    try:
        client = _client()
        client.ping()
    except Exception:  # no engine (or no SDK): nothing can be running in it
        return []
    wanted = str(Path(run).resolve()) if run else None
    removed = []
    for container in client.containers.list(all=True, filters={"label": OWNER_PID}):
        labels = container.labels
        owner = int(labels.get(OWNER_PID, "0") or 0)
        if owner <= 0 or ownership.start_ticks(owner) is not None or (wanted and labels.get(RUN) != wanted):
            continue
        container.remove(force=True)
        run_note = f", run {labels[RUN]}" if labels.get(RUN) else ""
        removed.append(f"container {container.name} left by pid {owner}{run_note}, which ended without removing it")
    return removed


@LAUNCHERS.add
class DockerLauncher(Launcher):
    name = "docker"
    bind_host = "0.0.0.0"  # inside the container's namespace; published on 127.0.0.1 only
    started_by = "container create"  # `containers.run` = create + start: the container's whole cold start

    def check(self, server_cls: type[Server], settings: object) -> None:
        enable = server_cls.image_enable
        try:
            client = _client()
            client.ping()
        except Exception as exc:
            raise NotAvailable(f"no Docker engine reachable ({type(exc).__name__}: {str(exc)[:160]})",
                               f"start a Docker engine, then: {enable}") from None
        try:
            client.images.get(server_cls.image)
        except Exception:
            raise NotAvailable(f"Docker image {server_cls.image} is not present locally", enable) from None

    def path(self, host_path: Path, spec_mounts: dict[str, str]) -> str:
        host = Path(host_path).resolve()
        for h, c in spec_mounts.items():
            base = Path(h).resolve()
            if host == base or base in host.parents:
                return str(PurePosixPath(c) / host.relative_to(base))
        raise ValueError(f"{host} is not under any mount of the container ({', '.join(spec_mounts)})")

    def launch(self, spec: LaunchSpec, log_path: Path) -> Handle:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        hand_over(spec.writable)
        started = time.perf_counter()  # container create -> ready is the container's cold start
        container = _client().containers.run(**container_kwargs(spec))
        return DockerHandle(container, log_path, started)
