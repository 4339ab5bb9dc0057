"""Fingerprint the scores of one audit per target kind, so a refactor can show it changed no number.

Runs four small audits on digits (about four minutes on 2 cores):

* ``default``: ``labelleak audit`` as the README's first command runs it (trained target, every default attack);
* ``trained``: a trained target with every registered attack at a small budget;
* ``model-file``: a cnn2 exported to ONNX and audited with ``--model`` and candidate files;
* ``remote``: the same ONNX file served by ``labelleak serve`` and audited with ``--target``.

and writes, per audit and attack, the SHA-256 of its raw score array (``arrays.npz``) and of ``scores.csv``::

    python scripts/score_fingerprint.py --write before.json     # on the old code
    python scripts/score_fingerprint.py --compare before.json   # on the new code: exit 1 on any difference
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

LABELLEAK = [sys.executable, "-m", "labelleak.cli"]
SMALL = ["--queries", "200", "--noise-samples", "10", "--quiet"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fingerprint(out: Path) -> dict[str, str]:
    arrays = np.load(out / "arrays.npz")
    found = {name: hashlib.sha256(np.ascontiguousarray(arrays[name]).tobytes()).hexdigest() for name in arrays.files}
    found["scores.csv"] = _digest(out / "scores.csv")
    return found


def _audit(out: Path, *args: str, cache: Path) -> dict[str, str]:
    command = [*LABELLEAK, "audit", "--out", str(out), "--cache-dir", str(cache), *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return _fingerprint(out)


def _own_files(root: Path) -> list[str]:
    """A cnn2 trained on 60 digits, as an ONNX file, with member, non-member and shadow files."""
    import torch

    from labelleak.data import load_digits
    from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model

    ds = load_digits()
    x, y = ds.features(), ds.y
    order = np.random.default_rng(0).permutation(len(x))
    parts = {"members": order[:60], "nonmembers": order[60:120], "shadow": order[120:320]}
    spec = ModelSpec("cnn2", (1, 8, 8), 10, width=0.5)
    net = init_model(lambda: build_model(spec), 0)
    net = train_model(net, x[parts["members"]], y[parts["members"]], TrainSettings(epochs=60, seed=0), n_classes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(),
            (torch.from_numpy(x[:1]),),
            str(root / "cnn.onnx"),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
    files: list[str] = []
    for name, idx in parts.items():
        np.savez(root / f"{name}.npz", x=x[idx], y=y[idx])
        files += [f"--{name}", str(root / f"{name}.npz")]
    return files


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    args = ["serve", "--model", str(model), "--input-shape", "1,8,8", "--port", str(port)]
    server = subprocess.Popen([*LABELLEAK, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/info", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"labelleak serve did not start on {url}")


def fingerprints(root: Path) -> dict[str, dict[str, str]]:
    from labelleak.attacks import attack_names

    cache = root / "cache"
    every = ",".join(attack_names())
    found = {"default": _audit(root / "default", "--quiet", cache=cache)}
    tiny = ["--train-size", "200", "--eval-size", "40", "--shadow-size", "200", "--epochs", "6"]
    found["trained"] = _audit(root / "trained", "--attacks", every, *tiny, *SMALL, cache=cache)
    files = _own_files(root)
    label_only = "gap,boundary-hsja,boundary-qeba,boundary-guided,transfer,augmentation,noise"
    own = ["--attacks", label_only, "--epochs", "4", *SMALL, *files]
    found["model-file"] = _audit(root / "model-file", "--model", str(root / "cnn.onnx"), *own, cache=cache)
    server, url = _serve(root / "cnn.onnx")
    try:
        remote = [*own, "--input-shape", "1,8,8", "--bounds", "0,1", "--n-classes", "10"]
        found["remote"] = _audit(root / "remote", "--target", url, *remote, cache=cache)
    finally:
        server.terminate()
        server.wait(10)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="write the fingerprints to this JSON file")
    group.add_argument("--compare", type=Path, help="compare with fingerprints written earlier; exit 1 if any differ")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as tmp:
        found = fingerprints(Path(tmp))
    if args.write:
        args.write.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
        print(f"wrote {sum(map(len, found.values()))} fingerprints to {args.write}")
        return 0
    before = json.loads(args.compare.read_text())
    differ = [
        f"{audit}/{name}"
        for audit in sorted(set(before) | set(found))
        for name in sorted(set(before.get(audit, {})) | set(found.get(audit, {})))
        if before.get(audit, {}).get(name) != found.get(audit, {}).get(name)
    ]
    for name in differ:
        print(f"differs: {name}")
    print(f"{len(differ)} of {sum(map(len, found.values()))} fingerprints differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
