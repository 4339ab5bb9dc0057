"""The probe check: before any attack, one small batch must come back as labels of a classifier.

A model file with the wrong input shape, the wrong number of classes or a broken export fails here, with a
one-line message naming the mismatch, rather than deep inside an attack after minutes of work.
"""

from __future__ import annotations

import numpy as np
import torch

from labelleak.errors import InvalidInputError, LabelleakError
from labelleak.oracle.base import LabelOracle


def probe_oracle(oracle: LabelOracle, *, n: int = 8, seed: int = 0) -> np.ndarray:
    """Labels of ``n`` uniform random inputs within the oracle's bounds; raises on anything but valid labels.

    The probe goes to the backend directly, so it is not counted against the audit's query budget.
    """
    rng = np.random.default_rng(seed)
    shape = (n, *oracle.input_shape)
    x = torch.from_numpy(rng.uniform(*oracle.bounds, size=shape).astype(np.float32))
    try:
        labels = torch.as_tensor(oracle._predict(x)).reshape(-1)
    except LabelleakError as exc:
        raise InvalidInputError(f"probe batch: {exc}") from None
    except Exception as exc:  # the backend's own error (onnxruntime, torch): its first line names the problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(
            f"probe batch of shape {shape}: the model failed ({type(exc).__name__}: {first[:300]}); "
            "check --input-shape and --layout"
        ) from None
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
