"""``labelleak split export``: the members, non-members and shadow data of a split labelleak makes, as files, so
that a model labelleak trained can be served (``labelleak serve``) and audited remotely on exactly its candidates.
Orchestration only: the split and the target come from :func:`labelleak.pipeline.setup.prepare`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labelleak.errors import InvalidInputError
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup import prepare
from labelleak.report.split_files import write_split_files


def export_split(cfg: AuditConfig, folder: str | Path) -> dict[str, Any]:
    """Train or load ``cfg``'s target (from the model cache, as an audit would) and write its candidates and the
    adversary's shadow data into ``folder``; returns what ``split.json`` records."""
    if cfg.is_remote or cfg.model:
        raise InvalidInputError("split export: only for a target labelleak trains (no --target or --model)")
    setup = prepare(cfg)
    try:
        member = setup.is_member.astype(bool)
        sd = setup.shadow_data
        model_dir = str(setup.target.get("model_dir", ""))
        bounds = ",".join(f"{b:g}" for b in setup.oracle.bounds)
        about = {
            "dataset": setup.dataset,
            "seed": cfg.seed,
            "split": setup.split,
            "target": {k: setup.target.get(k) for k in ("model_dir", "arch", "trained_rows", "train_accuracy")},
            "input_shape": list(setup.oracle.input_shape),
            "bounds": list(setup.oracle.bounds),
            "serve": f"labelleak serve --model {model_dir}",
            "audit": (
                f"labelleak audit --target http://127.0.0.1:8000 --members {Path(folder) / 'members.npz'} "
                f"--nonmembers {Path(folder) / 'nonmembers.npz'} --shadow {Path(folder) / 'shadow.npz'} "
                f"--bounds {bounds}"
            ),
        }
        paths = write_split_files(
            folder,
            members=(setup.x[member], setup.y[member]),
            nonmembers=(setup.x[~member], setup.y[~member]),
            shadow=(np.concatenate([sd.x_train, sd.x_test]), np.concatenate([sd.y_train, sd.y_test])),
            about=about,
        )
    finally:
        for close in setup.closers:
            close()
    return {**about, "files": paths}
