"""Dataset loaders: digits (bundled), CIFAR-10/100 (pickle batches or .npz), any .npz, image folders, tabular.

Every loader returns a :class:`Dataset` whose pool is the train and test parts concatenated (the paper shuffles
one pool and splits it four ways). Files are read without executing code: ``.npz`` with ``allow_pickle=False``
and the CIFAR pickle batches through an unpickler that only admits NumPy arrays and plain containers.
"""

from __future__ import annotations

import csv
import io
import pickle
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from labelleak._extras import missing_extra
from labelleak.data.datasets import Dataset
from labelleak.errors import DataFileError, InvalidInputError

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp"}
DEFAULT_CIFAR10_PLACES = ("../shared/data/cifar10.npz", "shared/data/cifar10.npz", "data/cifar10.npz")


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 samples, values 0..16), as 1-channel images."""
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = bunch.images.astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    return Dataset(
        "digits",
        x,
        bunch.target.astype(np.int64),
        [str(c) for c in bunch.target_names],
        kind="image",
        value_max=16.0,
        source="sklearn.datasets.load_digits",
    )


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except NumPy's array reconstruction helpers."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_pickle_batch(path: Path) -> dict:
    if not path.is_file():
        raise DataFileError(f"missing CIFAR batch file: {path}")
    try:
        with path.open("rb") as fh:
            obj = _ArrayOnlyUnpickler(fh, encoding="latin1").load()
    except Exception as exc:
        raise DataFileError(f"corrupt or unsafe CIFAR batch file {path}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataFileError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_rows_to_images(data: object, path: Path) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape[1] != 3072:
        raise DataFileError(f"{path}: expected 'data' of shape (N, 3072), got {arr.shape}")
    return arr.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _load_cifar_folder(folder: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if n_classes == 10:
        files = [folder / f"data_batch_{i}" for i in range(1, 6)] + [folder / "test_batch"]
        label_key, meta_file, names_key = "labels", folder / "batches.meta", "label_names"
    else:
        files = [folder / "train", folder / "test"]
        label_key, meta_file, names_key = "fine_labels", folder / "meta", "fine_label_names"
    xs, ys = [], []
    for f in files:
        batch = _read_pickle_batch(f)
        if "data" not in batch or label_key not in batch:
            raise DataFileError(f"{f}: missing keys 'data'/'{label_key}', found {sorted(batch)}")
        xs.append(_cifar_rows_to_images(batch["data"], f))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    names = [str(i) for i in range(n_classes)]
    if meta_file.is_file():
        meta = _read_pickle_batch(meta_file)
        raw = meta.get(names_key, names)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    return np.concatenate(xs), np.concatenate(ys), names


def load_cifar(path: str | Path | None, *, n_classes: int = 10) -> Dataset:
    """CIFAR-10 or CIFAR-100 from the python batch folder or an ``.npz`` with ``x_train, y_train, x_test, y_test``."""
    if n_classes not in (10, 100):
        raise InvalidInputError(f"cifar: n_classes must be 10 or 100, got {n_classes}")
    name = f"cifar{n_classes}"
    if path is None:
        found = [p for p in DEFAULT_CIFAR10_PLACES if Path(p).is_file()] if n_classes == 10 else []
        if not found:
            raise DataFileError(
                f"{name}: no data path given and none found in {list(DEFAULT_CIFAR10_PLACES)}; pass --data PATH "
                "(a cifar-10-batches-py/ or cifar-100-python/ folder, or an .npz)"
            )
        path = found[0]
    p = Path(path)
    if p.is_dir():
        x, y, names = _load_cifar_folder(p, n_classes)
        ds = Dataset(name, x, y, names, kind="image", source=str(p))
    else:
        ds = load_npz(p, name=name)
        if ds.kind != "image" or ds.x.shape[1:] != (32, 32, 3):
            raise DataFileError(f"{p}: expected CIFAR images of shape (N, 32, 32, 3), got {ds.x.shape}")
    if ds.n_classes != n_classes:
        raise DataFileError(f"{p}: expected {n_classes} classes for {name}, found {ds.n_classes}")
    return ds


def _open_npz(p: Path) -> dict[str, np.ndarray]:
    if not p.is_file():
        raise DataFileError(f"data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataFileError(f"corrupt or unreadable .npz file {p}: {exc}") from None


def _labels(raw: np.ndarray, p: Path, key: str) -> np.ndarray:
    y = np.asarray(raw).reshape(-1)
    if y.dtype.kind not in "iu":
        raise DataFileError(f"{p}: '{key}' must hold integer labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise DataFileError(f"{p}: '{key}' holds negative labels")
    return y.astype(np.int64)


def load_npz(path: str | Path, *, name: str | None = None) -> Dataset:
    """Any ``.npz`` with keys ``x_train, y_train, x_test, y_test`` or ``x, y`` (optional ``class_names``).

    Arrays of rank 4 (N, H, W, C) or rank 3 (N, H, W) are images (uint8 values 0..255, or floats in [0, 1]);
    rank 2 is tabular.
    """
    p = Path(path)
    z = _open_npz(p)
    if {"x_train", "y_train", "x_test", "y_test"} <= z.keys():
        x = np.concatenate([z["x_train"], z["x_test"]])
        y = np.concatenate([_labels(z["y_train"], p, "y_train"), _labels(z["y_test"], p, "y_test")])
    elif {"x", "y"} <= z.keys():
        x, y = z["x"], _labels(z["y"], p, "y")
    else:
        raise DataFileError(f"{p}: expected keys x_train/y_train/x_test/y_test or x/y, found {sorted(z)}")
    if len(x) != len(y):
        raise DataFileError(f"{p}: {len(x)} samples but {len(y)} labels")
    n_classes = int(y.max()) + 1 if y.size else 0
    names = [str(c) for c in z["class_names"]] if "class_names" in z else [str(i) for i in range(n_classes)]
    if len(names) < n_classes:
        raise DataFileError(f"{p}: {len(names)} class_names but labels go up to {n_classes - 1}")
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"{p}: samples must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim == 4:
        value_max = 255.0 if x.dtype == np.uint8 or x.max(initial=0) > 1.0 else 1.0
        return Dataset(name or p.stem, x, y, names, kind="image", value_max=value_max, source=str(p))
    if x.ndim == 2:
        if not np.isfinite(x).all():
            raise DataFileError(f"{p}: tabular features contain NaN or infinite values")
        return Dataset(name or p.stem, x.astype(np.float32), y, names, kind="tabular", source=str(p))
    raise DataFileError(f"{p}: samples must have rank 2 (tabular) or 3-4 (images), got shape {x.shape}")


MAX_IMAGE_PIXELS = 4096 * 4096  # far beyond any image a membership audit trains on; refused before decoding


def _class_files(folder: Path, root: Path) -> list[Path]:
    """The image files of one class folder: regular files inside ``root`` only, so a named pipe cannot hang the
    loader and a symlink cannot read files from elsewhere."""
    files = []
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        if f.is_symlink() and not f.resolve().is_relative_to(root.resolve()):
            raise DataFileError(f"{f}: a symlink that leaves the image folder {root}; copy the file in instead")
        if not stat.S_ISREG(f.stat().st_mode):
            raise DataFileError(f"{f}: not a regular file (a pipe, device or folder named like an image)")
        files.append(f)
    return files


def _read_image(f: Path, image_size: int | None, image_module: Any) -> np.ndarray:
    try:
        with image_module.open(f) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataFileError(f"{f}: {w} x {h} pixels, more than {MAX_IMAGE_PIXELS} (a decompression bomb?)")
            im = im.convert("RGB")
            size = image_size or w
            return np.asarray(im.resize((size, size)), dtype=np.uint8)
    except DataFileError:
        raise
    except (image_module.UnidentifiedImageError, image_module.DecompressionBombError, OSError, ValueError) as exc:
        raise DataFileError(f"corrupt image file {f}: {exc}") from None


def load_image_folder(path: str | Path, *, image_size: int | None = None) -> Dataset:
    """A folder with one sub-folder per class (GTSRB, faces); images are resized to a common square size.

    Without ``image_size`` the size of the first image is used.
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise missing_extra("images", "image-folder datasets") from exc

    root = Path(path)
    if not root.is_dir():
        raise DataFileError(f"image folder not found: {root}")
    class_dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
    for d in class_dirs:
        if d.is_symlink() and not d.resolve().is_relative_to(root.resolve()):
            raise DataFileError(f"{d}: a symlinked class folder that leaves the image folder {root}")
    classes = [d.name for d in class_dirs]
    if len(classes) < 2:
        raise DataFileError(f"{root}: expected one sub-folder per class (at least 2), found {len(classes)}")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for f in _class_files(root / cls, root):
            images.append(_read_image(f, image_size, Image))
            image_size = image_size or images[-1].shape[0]
            labels.append(label)
    if not images:
        raise DataFileError(f"{root}: no image files found in the class folders")
    return Dataset(
        root.name, np.stack(images), np.asarray(labels, dtype=np.int64), classes, kind="image", source=str(root)
    )


def load_tabular(path: str | Path, *, label_column: str | None = None) -> Dataset:
    """A CSV with a header row (label column by name, default the last one) or an ``.npz`` with 2-D ``x``."""
    p = Path(path)
    if p.suffix == ".npz":
        ds = load_npz(p)
        if ds.kind != "tabular":
            raise DataFileError(f"{p}: expected 2-D tabular features, got shape {ds.x.shape}")
        return ds
    if not p.is_file():
        raise DataFileError(f"data file not found: {p}")
    try:
        rows = list(csv.reader(io.StringIO(p.read_text())))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"unreadable CSV file {p}: {exc}") from None
    if len(rows) < 2:
        raise DataFileError(f"{p}: expected a header row and at least one data row")
    header, body = rows[0], [r for r in rows[1:] if r]
    col = header.index(label_column) if label_column in header else len(header) - 1
    if label_column is not None and label_column not in header:
        raise DataFileError(f"{p}: no label column {label_column!r}; columns are {header}")
    if any(len(r) != len(header) for r in body):
        raise DataFileError(f"{p}: every row must have {len(header)} fields")
    raw_labels = [r[col] for r in body]
    names = sorted(set(raw_labels))
    index = {n: i for i, n in enumerate(names)}
    try:
        x = np.asarray([[float(v) for j, v in enumerate(r) if j != col] for r in body], dtype=np.float32)
    except ValueError as exc:
        raise DataFileError(f"{p}: non-numeric feature value ({exc})") from None
    if not np.isfinite(x).all():
        raise DataFileError(f"{p}: features contain NaN or infinite values")
    y = np.asarray([index[v] for v in raw_labels], dtype=np.int64)
    return Dataset(p.stem, x, y, names, kind="tabular", source=str(p))
