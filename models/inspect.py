"""`deploy-compare inspect PATH`: signature, size, sha256 and graph summary of an exported artifact.

Formats are a registry of `ArtifactFormat`s; each has a `detect(path)` (by content where the format
has a signature: a SavedModel folder holds saved_model.pb, a .tflite flatbuffer carries the identifier
"TFL3", a TorchScript file is a zip with a `code/` folder, a torch.export archive a zip with `models/*.json`,
an AOTInductor package a zip with `data/aotinductor/`; ONNX has no magic bytes, so it is the
`.onnx` suffix and a parseable ModelProto) and a `describe(path)`. `inspect_artifact(path)` returns an
`ArtifactInfo` dataclass (used by the exporters for the manifest, by tests and by the report).
"""
from __future__ import annotations

import argparse
import json
import re
import zipfile
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from deploy_compare.core.registry import Registry
from deploy_compare.models.exporters.base import TensorSpec, digest


@dataclass
class ArtifactInfo:
    path: str
    format: str
    sha256: str
    bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_counts: dict[str, int]  # graph op type -> count
    opset: int | None = None  # ONNX default-domain opset
    details: dict[str, str] = field(default_factory=dict)  # format-specific facts (signature name, producer)


@dataclass
class GraphSummary:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_counts: dict[str, int]
    opset: int | None = None
    details: dict[str, str] = field(default_factory=dict)


class ArtifactFormat(ABC):
    name: ClassVar[str]

    @abstractmethod
    def detect(self, path: Path) -> bool: ...

    @abstractmethod
    def describe(self, path: Path) -> GraphSummary: ...


FORMATS: Registry[ArtifactFormat] = Registry("artifact format")


def _register(cls: type[ArtifactFormat]) -> type[ArtifactFormat]:
    FORMATS.add(cls())
    return cls


def _dims(dims: list[int]) -> list[int | None]:
    return [None if d < 0 else int(d) for d in dims]


@_register
class SavedModelFormat(ArtifactFormat):
    """Reads saved_model.pb (signature defs and graph, function library included) without loading weights."""

    name = "savedmodel"

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / "saved_model.pb").is_file()

    def describe(self, path: Path) -> GraphSummary:
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString((path / "saved_model.pb").read_bytes())
        meta = sm.meta_graphs[0]
        name = "serving_default" if "serving_default" in meta.signature_def else sorted(meta.signature_def)[0]
        sig = meta.signature_def[name]

        def specs(tensors) -> list[TensorSpec]:
            return [TensorSpec(key, _dims([d.size for d in t.tensor_shape.dim]), tf.dtypes.as_dtype(t.dtype).name)
                    for key, t in sorted(tensors.items())]

        ops = Counter(n.op for n in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
        return GraphSummary(specs(sig.inputs), specs(sig.outputs), dict(ops.most_common()),
                            details={"signature": name, "signatures": ", ".join(sorted(meta.signature_def)),
                                     "functions": str(len(meta.graph_def.library.function))})


@_register
class TFLiteFormat(ArtifactFormat):
    """Signature from the LiteRT interpreter; op counts from the flatbuffer (LiteRT's generated schema)."""

    name = "tflite"

    def detect(self, path: Path) -> bool:
        if not path.is_file():
            return False
        with path.open("rb") as fh:
            return fh.read(8)[4:8] == b"TFL3"

    def describe(self, path: Path) -> GraphSummary:
        import numpy as np
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path))
        signatures = interp.get_signature_list()
        details = {"signatures": ", ".join(signatures) or "none"}
        if signatures:  # names from the signature (input/logits), not the internal tensor names
            name = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
            runner = interp.get_signature_runner(name)
            ins, outs = runner.get_input_details().items(), runner.get_output_details().items()
            details["signature"] = name
        else:
            ins = [(d["name"], d) for d in interp.get_input_details()]
            outs = [(d["name"], d) for d in interp.get_output_details()]

        def specs(items) -> list[TensorSpec]:
            return [TensorSpec(n, _dims(list(d["shape_signature"])), np.dtype(d["dtype"]).name) for n, d in items]

        model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops: Counter[str] = Counter()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for i in range(graph.OperatorsLength()):
                code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
                builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
                ops[names.get(builtin, f"builtin_{builtin}")] += 1
        details["subgraphs"] = str(model.SubgraphsLength())
        return GraphSummary(specs(ins), specs(outs), dict(ops.most_common()), details=details)


@_register
class TorchScriptFormat(ArtifactFormat):
    """Op counts from the inlined graph; signature from the `signature.json` the exporter stores inside."""

    name = "torchscript"

    def detect(self, path: Path) -> bool:
        if not (path.is_file() and zipfile.is_zipfile(path)):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/", 2)[1:2] == ["code"] for n in zf.namelist())

    def describe(self, path: Path) -> GraphSummary:
        import torch

        from deploy_compare.core.results import from_json_data
        from deploy_compare.models.exporters.torchscript import SIGNATURE_FILE

        extra = {SIGNATURE_FILE: ""}
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        ops = Counter(node.kind() for node in module.inlined_graph.nodes()
                      if not node.kind().startswith("prim::"))
        schema = str(module.forward.schema) if hasattr(module, "forward") else ""
        if extra[SIGNATURE_FILE]:
            declared = json.loads(extra[SIGNATURE_FILE])
            inputs = from_json_data(list[TensorSpec], declared["inputs"])
            outputs = from_json_data(list[TensorSpec], declared["outputs"])
            source = f"declared in {SIGNATURE_FILE} (TorchScript stores no shapes)"
        else:  # a TorchScript file from elsewhere: names from the schema, shapes unknown
            args = [a for a in module.forward.schema.arguments if a.name != "self"]
            inputs = [TensorSpec(a.name, [], str(a.type)) for a in args]
            outputs = [TensorSpec("output", [], str(module.forward.schema.returns[0].type))]
            source = "forward schema only (no signature.json; shapes unknown)"
        return GraphSummary(inputs, outputs, dict(ops.most_common()),
                            details={"forward": schema, "signature_source": source})


def _zip_members(path: Path) -> list[str]:
    """Member names of a zip file without its top folder (a .pt2 archive nests everything in one); [] otherwise."""
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return []
    with zipfile.ZipFile(path) as zf:
        return [n.split("/", 1)[-1] for n in zf.namelist()]


@_register
class TorchExportFormat(ArtifactFormat):
    """A `torch.export.save` archive: `models/*.json` (the serialized graph) and no compiled code. Signature
    from the loaded program's graph: its user inputs and outputs, a symbolic dimension shown as dynamic."""

    name = "torch-export"

    def detect(self, path: Path) -> bool:
        members = _zip_members(path)
        return "archive_format" in members and any(m.startswith("models/") and m.endswith(".json")
                                                   for m in members) \
            and not any(m.startswith("data/aotinductor/") for m in members)

    def describe(self, path: Path) -> GraphSummary:
        import torch
        from torch.export.graph_signature import InputKind

        program = torch.export.load(str(path))
        user_inputs = {s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT}

        def spec(node) -> TensorSpec:
            val = node.meta["val"]
            return TensorSpec(node.name, [d if isinstance(d, int) else None for d in val.shape],
                              str(val.dtype).removeprefix("torch."))

        nodes = list(program.graph.nodes)
        inputs = [spec(n) for n in nodes if n.op == "placeholder" and n.name in user_inputs]
        outputs = [spec(a) for n in nodes if n.op == "output" for a in n.args[0]]
        ops = Counter(str(n.target) for n in nodes if n.op == "call_function")
        return GraphSummary(inputs, outputs, dict(ops.most_common()),
                            details={"range_constraints": str(program.range_constraints),
                                     "signature_source": "the program's graph (user inputs and outputs)"})


_ATEN_CALL = re.compile(r"AOTI_TORCH_ERROR_CODE_CHECK\(aoti_torch_cpu_(\w+)\(")
_KERNEL_CALL = re.compile(r"^\s+(cpp_fused_\w+)\(", re.MULTILINE)


def _aoti_calls(path: Path) -> Counter[str]:
    """What an AOTInductor package's generated wrapper calls: ATen fallbacks (`aten.<op>`) and Inductor's own
    fused C++ kernels, by call site."""
    calls: Counter[str] = Counter()
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(".wrapper.cpp"):
                code = zf.read(name).decode("utf-8", "replace")
                calls.update(f"aten.{op}" for op in _ATEN_CALL.findall(code))
                calls.update(_KERNEL_CALL.findall(code))
    return calls


@_register
class AotiFormat(ArtifactFormat):
    """An AOTInductor package: `data/aotinductor/<model>/` holds the compiled shared library and its C++ source.
    The signature is the one the exporter declared in the package's metadata (the package stores no shapes); the
    "ops" are the wrapper's calls: ATen fallbacks and Inductor's fused kernels."""

    name = "aoti"

    def detect(self, path: Path) -> bool:
        return any(m.startswith("data/aotinductor/") for m in _zip_members(path))

    def describe(self, path: Path) -> GraphSummary:
        import torch._inductor

        from deploy_compare.core.results import from_json_data
        from deploy_compare.models.exporters.aoti import SIGNATURE_KEY

        model = torch._inductor.aoti_load_package(str(path))
        metadata = dict(model.get_metadata())
        kernels = _aoti_calls(path)
        details = {k: str(v) for k, v in sorted(metadata.items()) if k != SIGNATURE_KEY}
        if SIGNATURE_KEY in metadata:
            declared = json.loads(metadata[SIGNATURE_KEY])
            inputs = from_json_data(list[TensorSpec], declared["inputs"])
            outputs = from_json_data(list[TensorSpec], declared["outputs"])
            details["signature_source"] = f"declared in the package metadata ({SIGNATURE_KEY})"
        else:  # a package from elsewhere: no shapes
            inputs, outputs = [], []
            details["signature_source"] = "none (the package stores no shapes and declares no signature)"
        return GraphSummary(inputs, outputs, dict(kernels.most_common()), details=details)


@_register
class OnnxFormat(ArtifactFormat):
    name = "onnx"

    def detect(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".onnx"

    def describe(self, path: Path) -> GraphSummary:
        import onnx
        from onnx import helper

        model = onnx.load(str(path), load_external_data=False)
        initializers = {i.name for i in model.graph.initializer}

        def specs(values) -> list[TensorSpec]:
            out = []
            for v in values:
                if v.name in initializers:
                    continue
                t = v.type.tensor_type
                shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
                out.append(TensorSpec(v.name, shape, helper.tensor_dtype_to_np_dtype(t.elem_type).name))
            return out

        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        ops = Counter(n.op_type for n in model.graph.node)
        return GraphSummary(specs(model.graph.input), specs(model.graph.output), dict(ops.most_common()), opset,
                            details={"producer": f"{model.producer_name} {model.producer_version}".strip(),
                                     "ir_version": str(model.ir_version)})


class UnknownArtifact(ValueError):
    """PATH is none of the registered formats."""


def detect_format(path: Path) -> ArtifactFormat:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    matches = [fmt for _, fmt in FORMATS.items() if fmt.detect(path)]
    if not matches:
        raise UnknownArtifact(f"{path} is not a recognised artifact; known formats: {', '.join(FORMATS.names())} "
                              "(a SavedModel folder, a .tflite file, a TorchScript .pt zip, an .onnx file, "
                              "a torch.export or AOTInductor .pt2)")
    return matches[0]


def inspect_artifact(path: Path) -> ArtifactInfo:
    path = Path(path)
    fmt = detect_format(path)
    summary = fmt.describe(path)
    sha256, size = digest(path)
    return ArtifactInfo(path=str(path), format=fmt.name, sha256=sha256, bytes=size, inputs=summary.inputs,
                        outputs=summary.outputs, op_counts=summary.op_counts, opset=summary.opset,
                        details=summary.details)


def render(info: ArtifactInfo) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{escape(info.path)}[/]  format [bold]{info.format}[/]  {info.bytes:,} bytes")
    console.print(f"sha256 {info.sha256}")
    for key, value in ([("opset", str(info.opset))] if info.opset is not None else []) + list(info.details.items()):
        console.print(escape(f"{key}: {value}"))
    sig = Table(title="signature")
    for col in ("", "name", "shape", "dtype"):
        sig.add_column(col)
    for kind, specs in (("input", info.inputs), ("output", info.outputs)):
        for spec in specs:
            sig.add_row(kind, escape(spec.name), escape(spec.shape_text()), spec.dtype)
    console.print(sig)
    ops = Table(title=f"graph: {sum(info.op_counts.values())} ops, {len(info.op_counts)} types")
    ops.add_column("op type")
    ops.add_column("count", justify="right")
    for op, count in info.op_counts.items():
        ops.add_row(escape(op), str(count))
    console.print(ops)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a SavedModel folder, a .tflite file, a TorchScript .pt, an .onnx, "
                        "or a torch.export / AOTInductor .pt2")
    parser.add_argument("--json", action="store_true", help="print the ArtifactInfo as JSON instead of tables")


def main(args: argparse.Namespace) -> int:
    from deploy_compare.core.errors import UserError
    from deploy_compare.core.results import to_json_data

    try:
        info = inspect_artifact(args.path)
    except (FileNotFoundError, UnknownArtifact) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(to_json_data(info), indent=2))
    else:
        render(info)
    return 0


def run_stage(ctx) -> None:
    """Pipeline stage `inspect`: the graph summary of every artifact in the manifest, saved as
    inspect.json (the manifest holds signatures and digests; this adds op counts and opsets)."""
    from deploy_compare.core import results
    from deploy_compare.models.exporters.stage import load_manifest

    infos = []
    for record in load_manifest(ctx.run_dir).artifacts:
        info = inspect_artifact(ctx.run_dir.path / record.path)
        if info.sha256 != record.sha256:
            raise RuntimeError(f"{record.key}: {record.path} changed since export (sha256 {info.sha256[:12]} != "
                               f"manifest {record.sha256[:12]}); re-run the export stage")
        info.path = record.path  # relative to the run folder, like the manifest
        infos.append(info)
    results.save(infos, ctx.run_dir.inspect, list[ArtifactInfo])
    ctx.console.print(f"inspected {len(infos)} artifacts -> {ctx.run_dir.inspect.name}")
