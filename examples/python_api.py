"""Audit your own model from Python: any label oracle, arrays in, a typed result out.

A random forest trained here on digits is wrapped in a ``SklearnOracle`` and audited on (x, y) arrays with
shadow calibration, the data-free threshold, the checkpoint journal and every output file, as the CLI does.
Usage: ``python python_api.py [OUT_DIR] [MEMBERS] [QUERIES]``.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

import labelleak
from labelleak.oracle import SklearnOracle


def main(out: str = "api-example", n_members: int = 300, queries: int = 500) -> labelleak.AuditResults:
    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)  # (N, 64), values 0..16
    order = np.random.default_rng(0).permutation(len(x))
    m, n, s = order[:n_members], order[n_members : 2 * n_members], order[2 * n_members : 5 * n_members]
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(x[m], y[m])
    results = labelleak.audit(
        target=SklearnOracle(forest, input_shape=(64,), bounds=(0.0, 16.0)),
        members=(x[m], y[m]),
        nonmembers=(x[n], y[n]),
        shadow=(x[s], y[s]),
        attacks=["gap", "transfer", "boundary-hsja"],
        queries=queries,
        noise_samples=20,
        epochs=20,
        seed=0,
        out=out,
        cache_dir=f"{out}/cache",
        progress=False,
    )
    print(results)
    return results


if __name__ == "__main__":
    main(*sys.argv[1:2], *(int(a) for a in sys.argv[2:4]))
