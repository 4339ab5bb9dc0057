"""Datasets, loaders and the paper's four-way split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from labelleak.data.datasets import Dataset
from labelleak.data.loaders import load_cifar, load_digits, load_image_folder, load_npz, load_tabular
from labelleak.data.split import PARTS, Split, SplitSizes, four_way_split, public_part, validation_part
from labelleak.errors import InvalidInputError, UnknownNameError

DATASETS = ("digits", "cifar10", "cifar100", "npz", "folder", "tabular")


def load_dataset(name: str, path: str | Path | None = None) -> Dataset:
    """Load a dataset by name; ``path`` is required for all but ``digits`` (and optional for ``cifar10``)."""
    if name == "digits":
        return load_digits()
    if name in ("cifar10", "cifar100"):
        return load_cifar(path, n_classes=10 if name == "cifar10" else 100)
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if path is None:
        raise InvalidInputError(f"dataset {name!r} needs a path (--data PATH)")
    loaders: dict[str, Callable[[str | Path], Dataset]] = {
        "npz": load_npz,
        "folder": load_image_folder,
        "tabular": load_tabular,
    }
    loader = loaders[name]
    return loader(path)


__all__ = [
    "DATASETS",
    "PARTS",
    "Dataset",
    "Split",
    "SplitSizes",
    "four_way_split",
    "public_part",
    "validation_part",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_npz",
    "load_tabular",
]
