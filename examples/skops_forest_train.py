"""Fit a random forest on a CSV of digits (raw pixel values 0..16), save it with skops, write the data files.

Usage: ``python skops_forest_train.py OUT_DIR [MEMBERS]``; the audit then reads ``OUT_DIR/forest.skops`` and the
three CSVs (header row, label in the last column).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    header = ",".join([*(f"p{i}" for i in range(x.shape[1])), "label"])
    rows = [",".join([*(f"{v:g}" for v in row), str(label)]) for row, label in zip(x, y)]
    path.write_text("\n".join([header, *rows]) + "\n")


def main(out: Path, n_members: int = 300) -> None:
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)  # (N, 64), values 0..16
    order = np.random.default_rng(0).permutation(len(x))
    members, nonmembers, shadow = np.split(order, [n_members, 2 * n_members])
    for name, idx in (("members", members), ("nonmembers", nonmembers), ("shadow", shadow[: 3 * n_members])):
        write_csv(out / f"{name}.csv", x[idx], y[idx])
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(x[members], y[members])
    sio.dump(forest, out / "forest.skops")
    acc = (forest.predict(x[nonmembers]) == y[nonmembers]).mean()
    print(f"wrote {out}/forest.skops (held-out accuracy {acc:.3f}) and members/nonmembers/shadow.csv")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3]))
