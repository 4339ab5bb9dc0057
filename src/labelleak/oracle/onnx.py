"""A label oracle around an ONNX model run by onnxruntime (CPU; the CUDA provider when it is available).

The model's input metadata gives the expected sample shape (checked against ``input_shape``) and, for score
outputs, the number of classes. A model with several outputs needs ``output`` to say which one holds the labels
or the class scores; scores are reduced to labels inside the oracle and never stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak._extras import missing_extra
from labelleak.errors import DataFileError, InvalidInputError
from labelleak.oracle.forward import ForwardOracle
from labelleak.oracle.preprocess import Preprocessing

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise missing_extra("onnx", "ONNX models") from None
    return onnxruntime


def _fmt(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _natural(model_shape: tuple[int, ...], preprocess: Preprocessing) -> tuple[int, ...]:
    """The natural (channels-first) sample shape for a model that takes ``model_shape`` under ``preprocess``."""
    if preprocess.layout == "nhwc" and len(model_shape) == 3:
        h, w, c = model_shape
        return (c, h, w)
    return model_shape


class OnnxOracle(ForwardOracle):
    """Labels from an ONNX classifier file (or its bytes); see the module docstring."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        input_shape: tuple[int, ...] | None = None,
        n_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        preprocess: Preprocessing | None = None,
        output: str | None = None,
        batch_size: int = 256,
        max_queries: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        ort = _onnxruntime()
        label = "ONNX model" if isinstance(model, bytes) else str(model)
        available = ort.get_available_providers()
        chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are not the auditor's business
        try:
            source = model if isinstance(model, bytes) else str(model)
            session = ort.InferenceSession(source, sess_options=options, providers=chosen)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataFileError(f"{label}: not a loadable ONNX model ({first})") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise InvalidInputError(f"{label}: expected a model with one input, it has {len(inputs)} ({names})")
        inp = inputs[0]
        out = self._choose_output(session.get_outputs(), output, label)
        preprocess = preprocess or Preprocessing()
        declared = tuple(inp.shape[1:]) if inp.shape else ()
        known = all(isinstance(d, int) for d in declared)
        if input_shape is None:
            if not known:
                raise InvalidInputError(
                    f"{label}: its input '{inp.name}' has shape {_fmt(tuple(inp.shape))} with unnamed sizes; "
                    "give --input-shape"
                )
            input_shape = _natural(tuple(declared), preprocess)
        input_shape = tuple(int(d) for d in input_shape)
        preprocess.check(input_shape)
        wanted = preprocess.model_shape(input_shape)
        if len(declared) != len(wanted) or any(isinstance(d, int) and d != w for d, w in zip(declared, wanted)):
            raise InvalidInputError(
                f"input shape: the model's input '{inp.name}' expects samples of shape {_fmt(declared)}"
                f"{' (layout nhwc)' if preprocess.layout == 'nhwc' else ''}, "
                f"--input-shape {','.join(map(str, input_shape))} gives {_fmt(wanted)}"
            )
        if n_classes is None:
            n_classes = self._classes_from_metadata(out, label)
        if inp.type not in _DTYPES:
            raise InvalidInputError(f"{label}: input '{inp.name}' has type {inp.type}; expected a float tensor")
        dtype = _DTYPES[inp.type]
        batch = inp.shape[0] if inp.shape and isinstance(inp.shape[0], int) else batch_size
        self.session, self.output_name, self.providers = session, out.name, session.get_providers()

        def forward(x: np.ndarray) -> Any:
            return session.run([out.name], {inp.name: x.astype(dtype, copy=False)})[0]

        super().__init__(
            forward,
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            preprocess=preprocess,
            batch_size=batch,
            max_queries=max_queries,
            name=f"{label} output '{out.name}'",
        )

    @staticmethod
    def _choose_output(outputs: list[Any], output: str | None, label: str) -> Any:
        names = [o.name for o in outputs]
        if output is None:
            if len(outputs) > 1:
                raise InvalidInputError(
                    f"{label}: the model has {len(outputs)} outputs ({', '.join(names)}); "
                    "choose the labels or class scores with --output NAME"
                )
            return outputs[0]
        if output not in names:
            raise InvalidInputError(f"{label}: no output named {output!r}; the outputs are {', '.join(names)}")
        return outputs[names.index(output)]

    @staticmethod
    def _classes_from_metadata(out: Any, label: str) -> int:
        shape = tuple(out.shape or ())
        if out.type in _DTYPES and len(shape) == 2 and isinstance(shape[1], int):
            if shape[1] < 2:
                raise InvalidInputError(
                    f"{label}: not a classifier: output '{out.name}' has shape {_fmt(shape)} (one value per "
                    "input: a regression or single-score output); labelleak needs one score per class or labels"
                )
            return int(shape[1])
        raise InvalidInputError(
            f"{label}: output '{out.name}' (shape {_fmt(shape)}, {out.type}) does not state the number of classes; "
            "give --n-classes"
        )
