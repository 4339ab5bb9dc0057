"""The own-model audit of docs/guide/report.md: a model trained outside labelleak, handed over as an ONNX file.

A CNN2 (width 0.5) trained on 400 digits for 60 epochs with plain PyTorch, exported to ``target/cnn.onnx``, with
the auditor's three files: the 400 rows it trained on (``members.npz``), 400 it never saw (``nonmembers.npz``) and
800 more from the same distribution for the adversary's shadow model (``shadow.npz``). Then, from the repository
root::

    python docs/runs/audit-own-model/make_target.py
    labelleak audit --config docs/runs/audit-own-model/audit.yaml

The target files stay out of git (``target/`` is ignored); the script writes them again bit for bit (seeded).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from labelleak.data import load_digits
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model

HERE = Path(__file__).resolve().parent
SIZES = {"members": 400, "nonmembers": 400, "shadow": 800}


def main() -> None:
    torch.set_num_threads(2)
    out = HERE / "target"
    out.mkdir(exist_ok=True)
    ds = load_digits()
    x, y = ds.features(), ds.y
    order = np.random.default_rng(0).permutation(len(x))
    ends = np.cumsum(list(SIZES.values()))
    parts = dict(zip(SIZES, np.split(order[: ends[-1]], ends[:-1])))
    spec = ModelSpec("cnn2", (1, 8, 8), 10, width=0.5)
    net = init_model(lambda: build_model(spec), 0)
    net = train_model(net, x[parts["members"]], y[parts["members"]], TrainSettings(epochs=60, seed=0), n_classes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            net.eval(),
            (torch.from_numpy(x[:1]),),
            str(out / "cnn.onnx"),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
    for name, idx in parts.items():
        np.savez(out / f"{name}.npz", x=x[idx], y=y[idx])
    print(f"wrote {out}/cnn.onnx and {', '.join(f'{k}.npz ({len(v)} rows)' for k, v in parts.items())}")


if __name__ == "__main__":
    main()
