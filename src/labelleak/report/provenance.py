"""What a results file needs so that someone else can tell how it was made: versions, machine, file hashes.

Recorded once, when an audit's results are written (``results["provenance"]``); the report states what an older
results file lacks instead of guessing it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from labelleak._version import __version__

LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "matplotlib", "opacus", "safetensors", "jinja2")
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries whose behaviour the numbers depend on (``None`` when absent)."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    """Platform, CPU count, torch threads and the GPU torch would use, if any."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": sys.version.split()[0],
    }


def _files(results: dict[str, Any]) -> dict[str, str]:
    """The data and model files an audit read, where they are files on this machine."""
    config = results.get("config", {})
    paths = {key: config.get(key) for key in ("data", "members", "nonmembers", "shadow")}
    own = config.get("model")  # the auditor's model file, or a labelleak model folder
    if own:
        paths["model"] = str(Path(own) / "model.safetensors") if Path(own).is_dir() else own
    model_dir = results.get("target", {}).get("model_dir")
    if model_dir:
        paths["target model"] = str(Path(model_dir) / "model.safetensors")
    return {key: str(p) for key, p in paths.items() if p and Path(p).is_file()}


def provenance(results: dict[str, Any]) -> dict[str, Any]:
    """Versions, machine, finishing time and SHA-256 of the data and model files behind ``results``."""
    return {
        "labelleak_version": __version__,
        "libraries": library_versions(),
        "machine": machine(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "sha256": {key: {"path": path, "sha256": sha256_file(path)} for key, path in _files(results).items()},
    }
