"""Protos compiled with grpcio-tools at run time into the user's cache folder, never into the package (which may be
read-only: a site-packages install, the toolkit image run as uid 1000).

    compile_protos(name, sources, python=True)   # -> folder with *_pb2.py (and *_pb2_grpc.py) modules
    compile_protos(name, sources, python=False)  # -> folder with descriptors.pb (a FileDescriptorSet, imports included)

The cache folder is `$DEPLOY_COMPARE_CACHE`, else `$XDG_CACHE_HOME/deploy-compare`, else `~/.cache/deploy-compare`.
Each result is keyed by the protos' content and the grpcio-tools and protobuf versions, so a new server version or
a new compiler never reuses old output; it is written once (atomically: concurrent callers are safe).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

DESCRIPTORS = "descriptors.pb"


def cache_root() -> Path:
    """Where deploy-compare keeps what it generates for itself (not results)."""
    if os.environ.get("DEPLOY_COMPARE_CACHE"):
        return Path(os.environ["DEPLOY_COMPARE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deploy-compare"


def _well_known_protos() -> Path:
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("grpcio-tools is not installed; it compiles the servers' protos "
                                  "(pip install grpcio-tools, pinned in requirements.lock)")
    return Path(spec.submodule_search_locations[0]) / "_proto"


def _key(sources: Mapping[str, bytes], python: bool) -> str:
    from importlib.metadata import version

    h = hashlib.sha256(f"grpcio-tools {version('grpcio-tools')} protobuf {version('protobuf')} {python}".encode())
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name] + b"\0")
    return h.hexdigest()[:16]


def compile_protos(name: str, sources: Mapping[str, bytes], *, python: bool = True) -> Path:
    """Compile `sources` ({import path: .proto text}, plus protobuf's well-known types) once; the output folder."""
    root = cache_root() / "protos"
    out = root / f"{name}-{_key(sources, python)}"
    if out.is_dir():
        return out
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the cache folder {root} for compiled protos ({exc}); set DEPLOY_COMPARE_CACHE "
                      "or XDG_CACHE_HOME to a writable folder") from exc
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        src, gen = tmp / "src", tmp / "gen"
        for dest, text in sources.items():
            (src / dest).parent.mkdir(parents=True, exist_ok=True)
            (src / dest).write_bytes(text)
        gen.mkdir()
        outputs = ([f"--python_out={gen}", f"--grpc_python_out={gen}"] if python
                   else [f"--descriptor_set_out={gen / DESCRIPTORS}", "--include_imports"])
        # protoc runs in its own process: its compiler extension crashed (SIGSEGV) when called inside a process
        # that had already loaded TensorFlow's and PyTorch's native libraries
        proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"-I{_well_known_protos()}",
                               *outputs, *[str(src / p) for p in sources]], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"grpc_tools.protoc failed ({proc.returncode}) on the {name} protos "
                               f"({', '.join(sources)}): {proc.stderr.strip()[-2000:]}")
        try:
            os.rename(gen, out)
        except OSError:
            if not out.is_dir():  # another process won the race: use its result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
