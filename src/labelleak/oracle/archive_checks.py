"""Inspect a torch archive before torch opens it: nothing in a model file may run code on load.

``torch.export.load`` unpickles payloads marked ``use_pickle`` (and ``opaque_obj_`` constants) with no restriction,
falls back to a full unpickle of ``sample_inputs`` when the safe loader fails, resolves graph targets by walking
attributes from ``torch`` (``torch.serialization.os.system`` is reachable), turns ``guards_code`` into a Python
function and hands symbolic shapes to ``sympy.sympify`` (which evaluates). So a ``.pt2`` is opened only when

* its entries are the ones ``torch.export.save`` writes for a plain program (no AOTInductor, ExecuTorch, custom
  object, legacy pickle or extra-weights entries),
* every weight and constant is a raw tensor payload (``use_pickle`` false),
* ``sample_inputs`` loads with ``torch.load(weights_only=True)``,
* every graph target is an ``aten``/``prims`` operator or a plain ``_operator`` function, ``guards_code`` is empty,
* every symbolic expression is made of numbers, shape symbols, arithmetic and torch's shape functions.

A TorchScript archive runs no Python, but its pickles may name Python globals; they are scanned and only torch's
tensor-rebuilding names are allowed. The checks run on the bytes that are then loaded, so nothing can change
between the check and the load.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from labelleak.errors import DataFileError

_PT2_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
_PT2_PATTERNS = (
    re.compile(r"models/[\w.-]+\.json"),
    re.compile(r"data/weights/[\w.-]+_weights_config\.json"),
    re.compile(r"data/weights/weight_\d+"),
    re.compile(r"data/constants/[\w.-]+_constants_config\.json"),
    re.compile(r"data/constants/tensor_\d+"),
    re.compile(r"data/sample_inputs/[\w.-]+\.pt"),
)
_TARGET = re.compile(r"torch\.ops\.(aten|prims)\.[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?")
_OPERATOR_FUNCTIONS = {
    "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs",
    "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "not_", "invert",
}  # fmt: skip
_REFUSED_ATEN = {"from_file", "_from_file"}  # reads files from disk
_SHAPE_FUNCTIONS = {
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity", "Max", "Min", "Abs",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "oo", "true", "false", "True", "False",
    # sympy's own constructors and assumptions, as torch writes symbols: Symbol('s31', positive=True, integer=True)
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "positive", "negative", "nonnegative",
    "nonpositive", "integer", "real", "finite", "zero", "nonzero",
}  # fmt: skip
_QUOTED_SYMBOL = re.compile(r"'[a-z]\d+'")
_EXPR_CHARS = re.compile(r"[\sA-Za-z0-9_+\-*/%(),<>=!.]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOL = re.compile(r"[a-z]\d+")
_NUMBER_PART = re.compile(r"\d+\.\d*|\.\d+")
_TORCHSCRIPT_GLOBALS = re.compile(
    r"torch\._utils _rebuild_(tensor|tensor_v2|tensor_v3|parameter|qtensor)|torch [A-Za-z]+Storage|torch device"
    r"|collections OrderedDict|torch\.jit\._pickle (build_[a-z]+list|restore_type_tag)|__torch__(\.\w+)+ \w+"
)
_TORCHSCRIPT_ENTRIES = re.compile(
    r"data\.pkl|constants\.pkl|traced_inputs\.pkl|version|byteorder|\.data/[\w.-]+|code/[\w./-]+"
    r"|(data|constants|traced_inputs)/\d+|extra/[\w./-]+"
)


def _refuse(path: Path, why: str) -> DataFileError:
    return DataFileError(f"{path}: refusing to load this torch file: {why}; export the model to ONNX instead")


def _entries(z: zipfile.ZipFile, path: Path) -> tuple[str, list[str]]:
    """The archive's single root folder and its entries relative to it."""
    names = [n for n in z.namelist() if not n.endswith("/")]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise _refuse(path, "its entries are not under one root folder")
    root = roots.pop()
    return root, [n[len(root) + 1 :] for n in names]


def _open_archive(data: bytes, path: Path) -> tuple[zipfile.ZipFile, str, list[str]]:
    """The archive, its root folder and its entries relative to that root."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _refuse(path, "not a zip archive") from None
    return (z, *_entries(z, path))


def _json(z: zipfile.ZipFile, name: str, path: Path) -> Any:
    try:
        return json.loads(z.read(name))
    except (ValueError, UnicodeDecodeError):
        raise _refuse(path, f"{name} is not JSON") from None


def _check_payload_config(config: Any, prefix: str, name: str, path: Path) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(path, f"{name} has no payload table")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(path, f"{name}: payload {fqn!r} is pickled, and unpickling can run arbitrary code")
        if not re.fullmatch(rf"{prefix}\d+", str(meta.get("path_name", ""))):
            raise _refuse(path, f"{name}: payload {fqn!r} is not a plain tensor ({meta.get('path_name')!r})")


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, depth first (a list's items carry the list's key)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def _check_target(target: Any, path: Path) -> None:
    if not isinstance(target, str):
        raise _refuse(path, f"graph target {target!r} is not an operator name")
    if target.startswith("_operator.") and target.split(".", 1)[1] in _OPERATOR_FUNCTIONS:
        return
    match = _TARGET.fullmatch(target)
    if match is None or target.split(".")[3] in _REFUSED_ATEN:
        raise _refuse(path, f"graph target {target!r} is not an aten or prims operator")


def _check_expression(expr: Any, path: Path) -> None:
    """Only numbers, shape symbols (bare or quoted in ``Symbol(...)``), operators and the functions above: no other
    string, no attribute, no dunder, so ``sympify`` has nothing to evaluate but arithmetic."""
    bare = _QUOTED_SYMBOL.sub(" s0 ", expr) if isinstance(expr, str) else ""
    if not isinstance(expr, str) or not _EXPR_CHARS.fullmatch(bare) or "__" in bare:
        raise _refuse(path, f"symbolic shape {str(expr)[:60]!r} is not an arithmetic expression")
    words = _NUMBER_PART.sub(" ", bare)
    for word in _IDENTIFIER.findall(words):
        if not (_SYMBOL.fullmatch(word) or word in _SHAPE_FUNCTIONS):
            raise _refuse(path, f"symbolic shape {expr[:60]!r} names {word!r}")
    if "." in words:
        raise _refuse(path, f"symbolic shape {expr[:60]!r} reads an attribute")


def _check_program(program: Any, name: str, path: Path) -> None:
    if not isinstance(program, dict) or "graph_module" not in program:
        raise _refuse(path, f"{name} is not a serialized program")
    if program.get("guards_code"):
        raise _refuse(path, f"{name} carries guard code, which torch turns into Python")
    for symbol in program.get("range_constraints") or {}:
        _check_expression(symbol, path)
    for key, value in _walk(program):
        if key in ("target", "as_operator"):
            _check_target(value, path)
        elif key == "expr_str":
            _check_expression(value, path)
        elif key in ("as_custom_obj", "as_graph"):
            raise _refuse(path, f"{name} uses custom objects or sub-graphs")


def _check_sample_inputs(data: bytes, name: str, path: Path) -> None:
    if not data:
        return
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception:
        raise _refuse(path, f"{name} is not loadable as plain tensors (torch would unpickle it)") from None


def check_export_archive(data: bytes, path: Path) -> None:
    """Raise DataFileError unless ``data`` (a ``torch.export.save`` file) holds only tensors and a plain program."""
    z, root, names = _open_archive(data, path)
    for name in names:
        if name not in _PT2_FIXED and not any(p.fullmatch(name) for p in _PT2_PATTERNS):
            raise _refuse(path, f"unexpected entry {name!r} (only a plain exported program is accepted)")
    for name in names:
        full = f"{root}/{name}"
        if name.endswith("_weights_config.json"):
            _check_payload_config(_json(z, full, path), "weight_", name, path)
        elif name.endswith("_constants_config.json"):
            _check_payload_config(_json(z, full, path), "tensor_", name, path)
        elif name.startswith("models/"):
            _check_program(_json(z, full, path), name, path)
        elif name.startswith("data/sample_inputs/"):
            _check_sample_inputs(z.read(full), name, path)


def _pickle_globals(data: bytes) -> Iterator[str]:
    """The ``module name`` pairs a pickle imports (GLOBAL and STACK_GLOBAL opcodes)."""
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            yield str(arg)
        elif op.name == "STACK_GLOBAL":
            yield " ".join(strings[-2:]) if len(strings) >= 2 else "?"
        elif isinstance(arg, str):
            strings.append(arg)


def check_torchscript_archive(data: bytes, path: Path) -> None:
    """Raise DataFileError unless ``data`` (a ``torch.jit.save`` file) has only TorchScript's entries and its
    pickles name only torch's rebuild functions."""
    z, root, names = _open_archive(data, path)
    for name in names:
        if not _TORCHSCRIPT_ENTRIES.fullmatch(name):
            raise _refuse(path, f"unexpected entry {name!r} in a TorchScript archive")
        if name.endswith(".pkl"):
            try:
                imported = list(_pickle_globals(z.read(f"{root}/{name}")))
            except Exception:
                raise _refuse(path, f"{name} is not a readable pickle") from None
            for ref in imported:
                if not _TORCHSCRIPT_GLOBALS.fullmatch(ref):
                    raise _refuse(path, f"{name} imports {ref!r}")
