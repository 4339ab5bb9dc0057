"""Targets from model files: ONNX, torch.export (.pt2), TorchScript, skops, or a labelleak model folder.

Nothing here unpickles. A pickle, joblib or ``torch.save`` file can run arbitrary code when it is loaded, so it is
refused with the way to convert it. A torch archive is read into memory once and inspected
(:mod:`labelleak.oracle.archive_checks`) before torch opens those same bytes; a ``.skops`` file is loaded only after
its untrusted types are checked (:mod:`labelleak.oracle.skops_trust`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelleak._extras import missing_extra
from labelleak.errors import DataFileError, InvalidInputError
from labelleak.oracle.archive_checks import check_export_archive, check_torchscript_archive
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.forward import ForwardOracle
from labelleak.oracle.preprocess import Preprocessing
from labelleak.oracle.probe import probe_failed
from labelleak.oracle.skops_trust import refused_types

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".npy")
FORMATS = ".onnx, .pt2 (torch.export), TorchScript (torch.jit.save), .skops, or a labelleak model folder"


def _refuse_pickle(p: Path, what: str) -> DataFileError:
    return DataFileError(
        f"{p}: refusing to load {what}: unpickling can run arbitrary code; convert the model first "
        "(scikit-learn: skops.io.dump(model, 'model.skops'); PyTorch: torch.onnx.export, torch.export.save "
        "or torch.jit.save)"
    )


def _torch_kind(data: bytes) -> str:
    """``torchscript``, ``export`` or ``pickle`` for a file written by torch (all are zip archives)."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        return "pickle"  # torch.save's legacy format, or an unknown binary
    if any("/models/" in n and n.endswith(".json") for n in names) or any(n.endswith("/archive_format") for n in names):
        return "export"
    if any("/code/" in n for n in names):
        return "torchscript"
    return "pickle"


def _torch_forward(module: Callable[..., Any], device: torch.device) -> Callable[[np.ndarray], Any]:
    def forward(x: np.ndarray) -> Any:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(x)).to(device))
        if not isinstance(out, torch.Tensor):
            raise InvalidInputError(
                f"model: returned {type(out).__name__}, not one tensor; export a model with one output "
                "(labels or one score per class)"
            )
        return out.float().cpu() if out.is_floating_point() else out.cpu()

    return forward


def _classes_by_probe(
    forward: Callable[[np.ndarray], Any], shape: tuple[int, ...], bounds: tuple[float, float], pre: Preprocessing
) -> int:
    """The number of class scores the model returns, read from one small batch (no metadata in torch files)."""
    lo, hi = bounds
    x = torch.from_numpy(np.random.default_rng(0).uniform(lo, hi, size=(2, *shape)).astype(np.float32))
    try:
        out = np.asarray(forward(pre(x).numpy()))
    except InvalidInputError:
        raise
    except Exception as exc:
        raise probe_failed(tuple(x.shape), exc) from None
    if out.dtype.kind == "f" and out.ndim == 2 and out.shape[1] >= 2:
        return int(out.shape[1])
    if out.dtype.kind in "iu":
        raise InvalidInputError(
            "model: it answers labels, not class scores, so it does not say how many classes "
            "there are; give --n-classes"
        )
    return 2  # let the oracle's output check report what is wrong with this output


def _load_skops(p: Path, trust: tuple[str, ...]) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise missing_extra("skops", ".skops models") from None
    try:
        untrusted = sio.get_untrusted_types(file=p)
    except Exception as exc:
        raise DataFileError(f"{p}: not a readable .skops file ({exc})") from None
    refused = refused_types(list(untrusted), trust)
    if refused:
        raise DataFileError(
            f"{p}: refusing to load {', '.join(refused)} (functions, and types that are not scikit-learn classes "
            f"or NumPy/SciPy data types, can run code at predict time); if you trust them, pass --trust "
            f"{','.join(refused)}"
        )
    return sio.load(p, trusted=untrusted)


def _sklearn_oracle(
    est: Any, p: Path, shape: tuple[int, ...] | None, n_classes: int | None, **common: Any
) -> LabelOracle:
    classes = getattr(est, "classes_", None)
    if classes is None or not hasattr(est, "predict"):
        raise InvalidInputError(f"{p}: not a fitted scikit-learn classifier (no classes_ or predict)")
    classes = np.asarray(classes)
    if classes.dtype.kind not in "iu" or classes.min() < 0:
        raise InvalidInputError(
            f"{p}: classes_ must be integers 0..K-1 (fit on integer labels), got {list(classes[:5])}"
        )
    if shape is None:
        n_features = getattr(est, "n_features_in_", None)
        if n_features is None:
            raise InvalidInputError(f"{p}: the estimator does not record its number of features; give --input-shape")
        shape = (int(n_features),)

    def forward(x: np.ndarray) -> Any:
        return np.asarray(est.predict(x.reshape(len(x), -1)))

    return ForwardOracle(
        forward, input_shape=shape, n_classes=n_classes or int(classes.max()) + 1, name=str(p), **common
    )


def _folder_oracle(p: Path, shape: tuple[int, ...] | None, n_classes: int | None, **common: Any) -> LabelOracle:
    from labelleak.models import load_model
    from labelleak.models.training import default_device

    model, spec, _ = load_model(p)
    if shape is not None and tuple(shape) != tuple(spec.input_shape):
        raise InvalidInputError(
            f"input shape: the model in {p} takes samples of shape {tuple(spec.input_shape)}, --input-shape gives "
            f"{tuple(shape)}"
        )
    device = default_device()
    return ForwardOracle(
        _torch_forward(model.to(device).eval(), device),
        input_shape=tuple(spec.input_shape),
        n_classes=n_classes or spec.n_classes,
        name=str(p),
        **common,
    )


def _torch_file_oracle(
    p: Path, data: bytes, kind: str, shape: tuple[int, ...] | None, n_classes: int | None, **common: Any
) -> LabelOracle:
    from labelleak.models.training import default_device

    if shape is None:
        raise InvalidInputError(f"{p}: a torch file does not record its input shape; give --input-shape")
    if kind == "export":
        check_export_archive(data, p)
    else:
        check_torchscript_archive(data, p)
    device = default_device()
    try:
        if kind == "export":  # frozen in the mode it was exported in
            module: Any = torch.export.load(io.BytesIO(data)).module().to(device)
        else:
            module = torch.jit.load(io.BytesIO(data), map_location=device).eval()
    except Exception as exc:
        raise DataFileError(f"{p}: not a loadable {kind} file ({str(exc).strip().splitlines()[0]})") from None
    if isinstance(module, nn.Module) and kind != "export":
        module.eval()
    forward = _torch_forward(module, device)
    if n_classes is None:
        n_classes = _classes_by_probe(forward, shape, common["bounds"], common["preprocess"])
    return ForwardOracle(forward, input_shape=shape, n_classes=n_classes, name=str(p), **common)


def load_target(
    path: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    preprocess: Preprocessing | None = None,
    output: str | None = None,
    trust: tuple[str, ...] = (),
    max_queries: int | None = None,
) -> LabelOracle:
    """A label oracle for the model in ``path`` (see the module docstring for the formats).

    ``input_shape`` and ``bounds`` describe the natural input space the attacks search in (channels first);
    ``preprocess`` what the model expects on top; ``output`` which ONNX output holds the labels or scores.
    """
    oracle = _open_target(
        Path(path),
        input_shape=input_shape,
        n_classes=n_classes,
        bounds=bounds,
        preprocess=preprocess,
        output=output,
        trust=trust,
        max_queries=max_queries,
    )
    if isinstance(oracle, ForwardOracle):
        oracle.reopen = partial(
            load_target,
            str(path),
            input_shape=oracle.input_shape,
            n_classes=oracle.n_classes,
            bounds=bounds,
            preprocess=preprocess,
            output=output,
            trust=trust,
        )
    return oracle


def _open_target(
    p: Path,
    *,
    input_shape: tuple[int, ...] | None,
    n_classes: int | None,
    bounds: tuple[float, float],
    preprocess: Preprocessing | None,
    output: str | None,
    trust: tuple[str, ...],
    max_queries: int | None,
) -> LabelOracle:
    pre = preprocess or Preprocessing()
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
    common: dict[str, Any] = {"bounds": bounds, "preprocess": pre, "max_queries": max_queries}
    if not p.exists():
        raise DataFileError(f"model file not found: {p}")
    suffix = p.suffix.lower()
    if output is not None and suffix != ".onnx":
        raise InvalidInputError(f"--output: only ONNX models have named outputs, {p} is not one")
    if p.is_dir():
        return _folder_oracle(p, shape, n_classes, **common)
    if suffix in PICKLE_SUFFIXES:
        raise _refuse_pickle(p, "a pickle file")
    if suffix == ".onnx":
        from labelleak.oracle.onnx import OnnxOracle

        return OnnxOracle(p, input_shape=shape, n_classes=n_classes, output=output, **common)
    if suffix == ".skops":
        return _sklearn_oracle(_load_skops(p, tuple(trust)), p, shape, n_classes, **common)
    if suffix in (".pt2", ".pt", ".pth", ".ts", ".torchscript", ".zip"):
        data = p.read_bytes()
        kind = _torch_kind(data)
        if kind == "pickle":
            raise _refuse_pickle(p, "a torch.save file (a pickle)")
        return _torch_file_oracle(p, data, kind, shape, n_classes, **common)
    raise DataFileError(f"{p}: unknown model format {suffix or '(no suffix)'}; expected {FORMATS}")
