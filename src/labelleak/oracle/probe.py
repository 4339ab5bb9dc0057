"""The probe check: before any attack, one small batch must come back as labels of a classifier.

A model file with the wrong input shape, the wrong number of classes or a broken export fails here, with a
one-line message naming the mismatch, rather than deep inside an attack after minutes of work.
"""

from __future__ import annotations

import numpy as np
import torch

from labelleak.errors import InvalidInputError, LabelleakError
from labelleak.oracle.base import LabelOracle


def failure_reason(exc: BaseException) -> str:
    """The line of a backend's error that names the problem (TorchScript puts it last, after a stack)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    last = lines[-1][:300]
    return last if last.startswith(f"{type(exc).__name__}:") else f"{type(exc).__name__}: {last}"


def probe_failed(shape: tuple[int, ...], exc: BaseException) -> InvalidInputError:
    return InvalidInputError(
        f"probe batch of shape {shape}: the model failed ({failure_reason(exc)}); check --input-shape and --layout"
    )


def probe_oracle(oracle: LabelOracle, *, n: int = 8, seed: int = 0) -> np.ndarray:
    """Labels of ``n`` uniform random inputs within the oracle's bounds; raises on anything but valid labels.

    The probe goes to the backend directly, so it is charged to no attack; a remote oracle still counts it as sent
    (it is paid for), against its ``max_queries`` and in the audit's journal.
    """
    rng = np.random.default_rng(seed)
    shape = (n, *oracle.input_shape)
    x = torch.from_numpy(rng.uniform(*oracle.bounds, size=shape).astype(np.float32))
    try:
        labels = torch.as_tensor(oracle._predict(x)).reshape(-1)
    except LabelleakError as exc:
        raise InvalidInputError(f"probe batch: {exc}") from None
    except Exception as exc:  # the backend's own error (onnxruntime, torch)
        raise probe_failed(shape, exc) from None
    if len(labels) != n:
        raise InvalidInputError(f"probe batch: the model returned {len(labels)} labels for {n} inputs")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= oracle.n_classes:
        bad = lo if lo < 0 else hi
        raise InvalidInputError(
            f"probe batch: the model answered label {bad}, outside 0..{oracle.n_classes - 1} "
            f"(n_classes {oracle.n_classes}); check --n-classes"
        )
    return labels.numpy()
