"""A finished audit's folder made without training anything: results.json and scores.csv from known scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelleak.metrics import summarize
from labelleak.report.files import write_json, write_scores_csv

# attack -> (threat model, separation of member scores from non-member scores)
ATTACKS = {"gap": ("label-only", 0.3), "boundary-hsja": ("label-only", 1.5), "score-loss": ("scores", 3.0)}


def make_audit_folder(folder: Path, *, n: int = 300, with_scores: bool = True, provenance: bool = True) -> dict:
    """Write an audit's results.json (and scores.csv) for three attacks on ``n`` members and ``n`` non-members."""
    rng = np.random.default_rng(0)
    is_member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    results: dict = {
        "labelleak_version": "0.1.0",
        "dataset": {"name": "synthetic", "source": "", "n_pool": 4 * n, "n_classes": 3, "input_shape": [6]},
        "config": {"dataset": "synthetic", "seed": 7, "queries": 300, "attacks": list(ATTACKS)},
        "split": {"target_train": n, "target_test": n, "shadow_train": n, "shadow_test": n},
        "target": {"arch": "mlp", "train_accuracy": 0.99, "test_accuracy": 0.81, "defense": "none"},
        "shadow": {"train_accuracy": 0.98, "test_accuracy": 0.8},
        "attacks": {},
        "seconds_total": 12.5,
    }
    rows = []
    for name, (threat, shift) in ATTACKS.items():
        scores = rng.normal(size=2 * n) + shift * is_member
        entry = {"threat_model": threat, **summarize(is_member, scores, n_boot=50, seed=0)}
        entry.update(
            queries_per_sample=1.0 if name != "boundary-hsja" else 250.0,
            setup_queries=100 if name == "gap" else 0,
            seconds=1.25,
            status_counts={"ok": 2 * n, "misclassified": 0, "failed": 0, "budget_hit": 0},
            params={"seed": 7},
        )
        if name == "boundary-hsja":
            entry["by_queries"] = [
                {"queries": q, "auc": 0.6 + 0.1 * i, "tpr_at_0.001": 0.01 * i, "tpr_at_0.01": 0.05 * i}
                for i, q in enumerate((100, 200, 300))
            ]
            entry["data_free"] = {
                "noise_queries": 4000,
                "sweep": [{"t": t, "accuracy": 0.7, "precision": 0.8, "recall": 0.6} for t in (0, 10, 50)],
            }
        results["attacks"][name] = entry
        rows += [
            {"attack": name, "sample_index": i, "is_member": m, "score": s, "queries": 1, "status": "ok"}
            for i, (m, s) in enumerate(zip(is_member, scores))
        ]
    if provenance:
        from labelleak.report.provenance import provenance as make

        results["provenance"] = make(results)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    if with_scores:
        write_scores_csv(folder / "scores.csv", rows)
    return results
