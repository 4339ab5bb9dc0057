"""A dataset read once for a series of audits on the same file, with its float features and fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak.data import load_dataset
from labelleak.data.datasets import Dataset


class DatasetCache:
    """The last dataset loaded, with its float features and fingerprint, held by a caller that runs a series of
    audits on the same file (``labelleak reproduce``, ``labelleak defend``) so that it is read and converted once.

    It belongs to that caller and goes away with it; a changed file (path, size or modification time) is
    loaded again.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: tuple[Dataset, np.ndarray, str] | None = None

    def load(self, name: str, path: str | None) -> tuple[Dataset, np.ndarray, str]:
        stamp = None
        if path is not None and Path(path).exists():
            st = Path(path).stat()
            stamp = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
        key = (name, path, stamp)
        if self._value is None or key != self._key:
            self._key, self._value = None, None  # free the old one before loading the next
            self._value, self._key = load_prepared(name, path), key
        return self._value


def load_prepared(name: str, path: str | None) -> tuple[Dataset, np.ndarray, str]:
    """The dataset, its float features and its fingerprint."""
    dataset = load_dataset(name, path)
    return dataset, dataset.features(), dataset.fingerprint()
