"""Train a small CNN on scikit-learn's digits with input normalisation, export it to ONNX, write the data files.

The network is trained on normalised images ``(x - mean) / std``, as most image models are; the exported ONNX file
takes that normalised input. The audit declares ``--mean``/``--std`` so that attacks search in the natural pixel
space [0, 1] while the model sees its own input. Usage: ``python onnx_cnn_train.py OUT_DIR [MEMBERS]``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn


def main(out: Path, n_members: int = 200) -> None:
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    members, nonmembers, shadow = np.split(order, [n_members, 2 * n_members])
    shadow = shadow[: 3 * n_members]
    for name, idx in (("members", members), ("nonmembers", nonmembers), ("shadow", shadow)):
        np.savez(out / f"{name}.npz", x=x[idx], y=y[idx])

    mean, std = float(x[members].mean()), float(x[members].std())
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )
    xt, yt = (torch.from_numpy(x[members]) - mean) / std, torch.from_numpy(y[members])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):  # full batch until it memorises its members
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    with warnings.catch_warnings():  # the TorchScript-based exporter: offline and deterministic
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (xt[:1],),
            str(out / "cnn.onnx"),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    (out / "normalisation.txt").write_text(f"{mean:.6f} {std:.6f}\n")
    with torch.no_grad():
        test = (torch.from_numpy(x[nonmembers]) - mean) / std
        acc = (net(test).argmax(1).numpy() == y[nonmembers]).mean()
    print(f"wrote {out}/cnn.onnx (mean {mean:.4f}, std {std:.4f}, held-out accuracy {acc:.3f}) and the data files")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3]))
