"""The project's images, built here with or without a registry (`make images` = `python -m serving.images`).

- **base** `deploy-compare/base:<hash>`: Python 3.11 + Java 17 on Debian bookworm. From
  `python:3.11-slim-bookworm` (+ Debian's openjdk-17-jre-headless) when that image is present or can be
  pulled; otherwise a local Debian made with `debootstrap --variant=minbase` and `docker import`. The
  label `deploy-compare.base-source` says which.
- **toolkit** `deploy-compare/toolkit:<hash>` from `Dockerfile`, **torchserve** `deploy-compare/torchserve:<hash>`
  from `serving/torchserve/Dockerfile` (or the official `pytorch/torchserve:0.12.0-cpu` when present):
  both install offline (`docker build --network none`, `pip --no-index`) from a wheelhouse that the
  host's own pip downloads once (`.cache/images/wheelhouse`); no index, proxy or certificate setting
  enters an image, and torch is checked to be the CPU wheel.

Each tag carries a content hash of what went in (lock, Dockerfile, sources, base): when the tag exists
nothing is rebuilt. `:local` aliases point at the newest build; the Docker launcher and
docker-compose.yml use them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "images"  # git-ignored: the wheelhouse and the debootstrap root
WHEELHOUSE = CACHE / "wheelhouse"
ROOTFS = CACHE / "rootfs-bookworm"

BASE_REPO, TOOLKIT_REPO, TORCHSERVE_REPO = "deploy-compare/base", "deploy-compare/toolkit", "deploy-compare/torchserve"
TOOLKIT_IMAGE = f"{TOOLKIT_REPO}:local"
TORCHSERVE_IMAGE = f"{TORCHSERVE_REPO}:local"
OFFICIAL_TORCHSERVE = "pytorch/torchserve:0.12.0-cpu"
SLIM = "python:3.11-slim-bookworm"
SOURCE_LABEL = "deploy-compare.base-source"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase",
               "--include=python3,python3-venv,ca-certificates,openjdk-17-jre-headless", "bookworm"]
# The slim route needs Debian's archive at build time (a machine that can pull usually can).
SLIM_DOCKERFILE = (f"FROM {SLIM}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                   "--no-install-recommends openjdk-17-jre-headless && rm -rf /var/lib/apt/lists/*\n")
# Wheels for CPython 3.11 on x86_64 Linux; the locks pin every version (locust 2.47 requires pytest, which
# only the test lock pins), `wheel` is an undeclared need of torchserve.
LOCKS = ("requirements.lock", "requirements-test.lock")
PLATFORM_ARGS = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                 "--abi", "abi3", "--abi", "none", *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                 "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64",
                 "linux_x86_64", "any") for a in ("--platform", p)]]
TOOLKIT_SOURCES = ("Dockerfile", ".dockerignore", "requirements.lock", "pyproject.toml", "README.md", "core",
                   "models", "serving", "loadtests", "deploy_compare")
TORCHSERVE_SOURCES = ("serving/torchserve/Dockerfile", "requirements.lock")
TIMEOUT_S = 1800  # one build step at most (first builds on a loaded 2-core machine)


class ImageError(RuntimeError):
    """An image could not be built: what failed, the command, and its log."""


@dataclass
class BuildReport:
    images: dict[str, str] = field(default_factory=dict)  # role -> tag
    built: list[str] = field(default_factory=list)  # roles built now (others were reused)
    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # role -> bytes (docker image inspect Size)
    base_source: str = ""


def content_hash(paths: tuple[str, ...], *extra: str, root: Path = ROOT) -> str:
    """sha256 (12 hex) over the names and bytes of every file under `paths` (caches excluded) + `extra`."""
    h = hashlib.sha256()
    for rel in sorted(paths):
        top = root / rel
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()[:12]


def _run(argv: list[str], log: Path, *, stdin: bytes | None = None, check: bool = True, timeout: float = TIMEOUT_S,
         env: dict[str, str] | None = None) -> int:
    """Run one build command, output appended to `log`; raise ImageError naming the command and the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            rc = subprocess.run(argv, input=stdin, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                env=env, check=False).returncode
        except subprocess.TimeoutExpired:
            raise ImageError(f"`{' '.join(argv[:3])} ...` did not finish within {timeout:.0f} s; log: {log}") from None
    if check and rc != 0:
        raise ImageError(f"`{' '.join(argv[:4])} ...` failed (exit {rc}); see {log}")
    return rc


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True, timeout=60).returncode == 0


def inspect(tag: str) -> dict:
    out = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, timeout=60, check=True)
    return json.loads(out.stdout)[0]


def _tag(src: str, *tags: str) -> None:
    for t in tags:
        subprocess.run(["docker", "tag", src, t], check=True, capture_output=True, timeout=60)


def _present_or_pulled(image: str, log: Path, allow_pull: bool) -> bool:
    if image_exists(image):
        return True
    return allow_pull and _run(["docker", "pull", image], log, check=False, timeout=120) == 0


def build_base(log: Path, allow_pull: bool) -> tuple[str, str, bool]:
    """(tag, source, built now) of the base image; reused when its recipe hash is already tagged."""
    tag = f"{BASE_REPO}:bookworm-{content_hash((), SLIM_DOCKERFILE, ' '.join(DEBOOTSTRAP))}"
    if image_exists(tag):
        return tag, inspect(tag)["Config"]["Labels"].get(SOURCE_LABEL, "?"), False
    if _present_or_pulled(SLIM, log, allow_pull):
        source = SLIM
        _run(["docker", "build", "--force-rm", "-t", tag, "--label", f"{SOURCE_LABEL}={source}", "-"], log,
             stdin=SLIM_DOCKERFILE.encode())
    else:
        source = "debootstrap bookworm minbase (no registry)"
        if not (ROOTFS / ".complete").exists():
            shutil.rmtree(ROOTFS, ignore_errors=True)
            _run([*DEBOOTSTRAP, str(ROOTFS)], log)
            # no package caches in the image
            for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in (ROOTFS / sub).glob("*"):
                    if p.is_file():
                        p.unlink()
            (ROOTFS / ".complete").touch()
        tar = subprocess.Popen(["tar", "-C", str(ROOTFS), "--exclude=./.complete", "-c", "."],
                               stdout=subprocess.PIPE)
        try:
            rc = subprocess.run(["docker", "import", "--change", f'LABEL {SOURCE_LABEL}="{source}"',
                                 "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["/bin/bash"]', "-", tag],
                                stdin=tar.stdout, capture_output=True, timeout=TIMEOUT_S).returncode
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait(timeout=60)
        if rc != 0 or tar.returncode != 0:
            raise ImageError(f"docker import of {ROOTFS} failed (tar exit {tar.returncode}, import exit {rc})")
    _tag(tag, f"{BASE_REPO}:local")
    return tag, source, True


def fill_wheelhouse(log: Path) -> None:
    """Download every locked wheel (CPython 3.11, x86_64) with the host's pip; skipped when done for this lock."""
    stamp = WHEELHOUSE / f".lock-{content_hash(LOCKS, *PLATFORM_ARGS)}"
    if not stamp.exists():
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", *PLATFORM_ARGS, "-d", str(WHEELHOUSE),
              *[a for lock in LOCKS for a in ("-r", str(ROOT / lock))], "wheel"], log)
        stamp.touch()
    torch = [p.name for p in WHEELHOUSE.glob("torch-*.whl")]
    if len(torch) != 1 or "+cpu" not in torch[0]:
        raise ImageError(f"the wheelhouse {WHEELHOUSE} must hold exactly one CPU torch wheel (found {torch}); "
                         "remove it and rerun `make images` (never a CUDA build)")


def _build(role: str, repo: str, sources: tuple[str, ...], base: str, dockerfile: Path, context: Path,
           log: Path, report: BuildReport) -> None:
    tag = f"{repo}:{content_hash(sources, base)}"
    if not image_exists(tag):
        t0 = time.perf_counter()
        fill_wheelhouse(log)  # only when something is built: an existing tag needs no wheels
        _run(["docker", "build", "--force-rm", "--network", "none", "--build-arg", f"BASE_IMAGE={base}", "--label",
              f"deploy-compare.content-hash={tag.split(':')[1]}", "-f", str(dockerfile), "-t", tag, str(context)],
             log, env={**os.environ, "DOCKER_BUILDKIT": "0"})
        report.seconds[role] = time.perf_counter() - t0
        report.built.append(role)
    _tag(tag, f"{repo}:local")
    report.images[role] = tag
    _untag_superseded(repo, keep={tag, f"{repo}:local"})


def _untag_superseded(repo: str, keep: set[str]) -> None:
    """Drop older content-hash tags of `repo` (their layers go once nothing else uses them)."""
    out = subprocess.run(["docker", "images", repo, "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    old = [t for t in out if t not in keep and not t.endswith(":<none>")]
    if old:
        subprocess.run(["docker", "rmi", *old], capture_output=True, timeout=300, check=False)


def build_all(allow_pull: bool = True, log: Path | None = None) -> BuildReport:
    log = log or CACHE / "build.log"
    report = BuildReport()
    t0 = time.perf_counter()
    base, report.base_source, built = build_base(log, allow_pull)
    if built:
        report.built.append("base")
    report.images["base"] = base
    report.seconds["base"] = time.perf_counter() - t0
    _build("toolkit", TOOLKIT_REPO, TOOLKIT_SOURCES, base, ROOT / "Dockerfile", ROOT, log, report)
    ours = f"{TORCHSERVE_REPO}:{content_hash(TORCHSERVE_SOURCES, base)}"
    if not image_exists(ours) and _present_or_pulled(OFFICIAL_TORCHSERVE, log, allow_pull):
        _tag(OFFICIAL_TORCHSERVE, TORCHSERVE_IMAGE)  # official; ours adds onnxruntime for the ONNX models
        report.images["torchserve"] = OFFICIAL_TORCHSERVE
    else:
        _build("torchserve", TORCHSERVE_REPO, TORCHSERVE_SOURCES, base, ROOT / TORCHSERVE_SOURCES[0], WHEELHOUSE,
               log, report)
    report.sizes = {role: int(inspect(tag)["Size"]) for role, tag in report.images.items()}
    report.seconds["total"] = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-pull", action="store_true", help="never try a registry (use local images or build)")
    args = parser.parse_args(argv)
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True,
                                                         timeout=60).returncode != 0:
        print("images: no Docker engine answers `docker info`: start one (scripts/docker-engine.sh start, as root)",
              file=sys.stderr)
        return 2
    try:
        report = build_all(allow_pull=not args.no_pull)
    except ImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for role, tag in report.images.items():
        how = "built" if role in report.built else "reused"
        print(f"{role:<11} {tag:<44} {report.sizes[role] / 1e6:8.0f} MB  {how}")
    print(f"base source: {report.base_source}; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
