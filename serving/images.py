"""The project's images, built with or without a registry (`make images` = `python -m deploy_compare.serving.images`).

- **base** `deploy-compare/base:<hash>`: Python 3.11 + Java 17 on Debian bookworm. From
  `python:3.11-slim-bookworm` (+ Debian's openjdk-17-jre-headless) when that image is present or can be
  pulled; otherwise a local Debian made with `debootstrap --variant=minbase` and `docker import`. The
  label `deploy-compare.base-source` says which.
- **toolkit** `deploy-compare/toolkit:<hash>` from `Dockerfile`, **torchserve** `deploy-compare/torchserve:<hash>`
  from `serving/torchserve/Dockerfile`, or the official `pytorch/torchserve:0.12.0-cpu` when it is present (or
  pullable) *and* holds every Python module the served formats need (`served_modules`: from the runtime
  registry, e.g. onnxruntime for ONNX, which the official image lacks): both install offline
  (`docker build --network none`, `pip --no-index`) from a wheelhouse that the host's own pip downloads once
  (`.cache/images/wheelhouse`); no index, proxy or certificate setting enters an image, and torch is checked
  to be the CPU wheel.

Each tag carries a content hash of what went in (lock, Dockerfile, sources, base): when the tag exists
nothing is rebuilt. `:local` aliases point at the newest build; the Docker launcher and
docker-compose.yml use them. A multi-stage build leaves its earlier stages as untagged images: each build
labels them with its own id (`deploy-compare.build`) and removes them afterwards, and only them.
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
import uuid
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
BUILD_LABEL = "deploy-compare.build"  # set on the intermediate stages by the Dockerfiles' DC_BUILD argument
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
TOOLKIT_SOURCES = ("Dockerfile", ".dockerignore", "requirements.lock", "pyproject.toml", "setup.py", "README.md",
                   "core", "models", "serving", "loadtests", "deploy_compare")
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
    notes: list[str] = field(default_factory=list)  # choices made and why (e.g. the official image refused)
    removed: list[str] = field(default_factory=list)  # intermediate stage images this run's builds removed


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


def served_modules(server: str = "torchserve") -> list[str]:
    """The Python modules an image of `server` needs for the formats it serves (serving/catalog.py), as the
    runtime registry declares them (`Runtime.imports`: torch for TorchScript, onnxruntime for ONNX), plus the
    server's own package."""
    from deploy_compare.models.runtimes.base import FORMAT_RUNTIMES, RUNTIMES, load_runtimes
    from deploy_compare.serving.catalog import SERVED_FORMATS

    load_runtimes()
    needed = {"torchserve": ["ts"]}.get(server, [])
    for row in SERVED_FORMATS[server]:
        needed += [m for m in RUNTIMES.get(FORMAT_RUNTIMES.get(row.format)).imports if m not in needed]
    return needed


def missing_modules(image: str, modules: list[str]) -> list[str]:
    """The `modules` the image's Python cannot find (no network, removed after)."""
    # find_spec of a submodule (`ai_edge_litert.interpreter`) raises when its parent package is missing
    probe = ("import importlib.util, json, sys\n"
             "def missing(m):\n"
             "    try:\n"
             "        return importlib.util.find_spec(m) is None\n"
             "    except ModuleNotFoundError:\n"
             "        return True\n"
             "print(json.dumps([m for m in sys.argv[1:] if missing(m)]))")
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c",
                           probe, *modules], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ImageError(f"could not list the Python modules of {image} (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def remove_build_stages(build_id: str) -> list[str]:
    """Remove the untagged intermediate stage images labelled with this build's id (and no other image)."""
    ids = subprocess.run(["docker", "images", "-q", "--filter", "dangling=true", "--filter",
                          f"label={BUILD_LABEL}={build_id}"], capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", *ids], capture_output=True, timeout=300, check=False)
    return ids


def docker_build(dockerfile: Path, context: Path, tag: str, log: Path, build_args: dict[str, str],
                 labels: dict[str, str]) -> list[str]:
    """`docker build` offline with the classic builder; then, on every outcome, the intermediate stage images it
    left (labelled with this build's id through the DC_BUILD argument) are removed. Their ids."""
    build_id = uuid.uuid4().hex[:16]
    args = [a for k, v in {**build_args, "DC_BUILD": build_id}.items() for a in ("--build-arg", f"{k}={v}")]
    args += [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    try:
        _run(["docker", "build", "--force-rm", "--network", "none", *args, "-f", str(dockerfile), "-t", tag,
              str(context)], log, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    finally:
        removed = remove_build_stages(build_id)
    return removed


def _build(role: str, repo: str, sources: tuple[str, ...], base: str, dockerfile: Path, context: Path,
           log: Path, report: BuildReport) -> None:
    tag = f"{repo}:{content_hash(sources, base)}"
    if not image_exists(tag):
        t0 = time.perf_counter()
        fill_wheelhouse(log)  # only when something is built: an existing tag needs no wheels
        report.removed += docker_build(dockerfile, context, tag, log, {"BASE_IMAGE": base},
                                       {"deploy-compare.content-hash": tag.split(":")[1]})
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


def official_torchserve_usable(log: Path, allow_pull: bool, report: BuildReport) -> bool:
    """Whether the official TorchServe image is here (or pulled) and holds every module the served formats need;
    the reason it is not used goes into the report."""
    if not _present_or_pulled(OFFICIAL_TORCHSERVE, log, allow_pull):
        report.notes.append(f"{OFFICIAL_TORCHSERVE} is not present and could not be pulled: building ours")
        return False
    missing = missing_modules(OFFICIAL_TORCHSERVE, served_modules("torchserve"))
    if missing:
        report.notes.append(f"{OFFICIAL_TORCHSERVE} lacks {', '.join(missing)} (needed by the served formats): "
                            "building ours")
        return False
    return True


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
    if not image_exists(ours) and official_torchserve_usable(log, allow_pull, report):
        _tag(OFFICIAL_TORCHSERVE, TORCHSERVE_IMAGE)
        report.images["torchserve"] = OFFICIAL_TORCHSERVE
    else:
        _build("torchserve", TORCHSERVE_REPO, TORCHSERVE_SOURCES, base, ROOT / TORCHSERVE_SOURCES[0], WHEELHOUSE,
               log, report)
    report.sizes = {role: int(inspect(tag)["Size"]) for role, tag in report.images.items()}
    report.seconds["total"] = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy_compare.serving.images",
                                     description=__doc__.split("\n\n")[0])
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
    for note in report.notes:
        print(f"note: {note}")
    if report.removed:
        print(f"removed {len(report.removed)} intermediate stage image(s) of this build: {' '.join(report.removed)}")
    print(f"base source: {report.base_source}; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
