"""Issue 12 pieces: declared preprocessing, model files, data files, resume, the typed Python API result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_linear_onnx
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.data.candidates import load_labelled
from labelleak.errors import DataFileError, InvalidInputError
from labelleak.oracle import TorchOracle
from labelleak.oracle.files import load_target
from labelleak.oracle.forward import ForwardOracle, labels_from_output
from labelleak.oracle.preprocess import Preprocessing

runner = CliRunner()


def test_preprocessing_normalises_per_channel_and_reorders_axes_inside_the_oracle():
    seen = []

    def forward(x: np.ndarray) -> np.ndarray:
        seen.append(x)
        return np.zeros((len(x), 3), np.float32)

    pre = Preprocessing(mean=(0.5, 0.25), std=(0.5, 0.25), layout="nhwc")
    oracle = ForwardOracle(forward, input_shape=(2, 3, 4), n_classes=3, preprocess=pre)
    x = np.random.default_rng(0).uniform(size=(5, 2, 3, 4)).astype(np.float32)
    oracle.predict_labels(x)
    expected = (x - np.array([0.5, 0.25]).reshape(1, 2, 1, 1)) / np.array([0.5, 0.25]).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(seen[0], expected.transpose(0, 2, 3, 1), rtol=1e-6)
    assert oracle.queries == 5
    with pytest.raises(InvalidInputError, match=r"mean: expected 1 or 2 values .* got 3"):
        ForwardOracle(forward, input_shape=(2, 3, 4), n_classes=3, preprocess=Preprocessing(mean=(0, 0, 0)))
    with pytest.raises(InvalidInputError, match="layout nhwc: needs image input"):
        ForwardOracle(forward, input_shape=(6,), n_classes=3, preprocess=Preprocessing(layout="nhwc"))


def test_labels_from_output_takes_labels_as_they_are_and_refuses_other_ranks():
    np.testing.assert_array_equal(labels_from_output(np.array([[2], [0]]), 2, 3), [2, 0])
    np.testing.assert_array_equal(labels_from_output(np.array([[0.1, 0.9], [0.8, 0.2]]), 2, 2), [1, 0])
    with pytest.raises(InvalidInputError, match=r"not a classifier: expected scores of shape \(N, classes\)"):
        labels_from_output(np.zeros((2, 3, 3), np.float32), 2, 3)
    with pytest.raises(InvalidInputError, match="returned output of shape"):
        labels_from_output(np.zeros((3, 2), np.float32), 2, 2)


def test_exported_program_and_torchscript_files_answer_like_the_module(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    example = torch.rand(2, 1, 8, 8)
    ep = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, tmp_path / "m.pt2")
    torch.jit.save(torch.jit.script(net), tmp_path / "m.ts")
    x = np.random.default_rng(0).uniform(size=(50, 1, 8, 8)).astype(np.float32)
    reference = TorchOracle(net, input_shape=(1, 8, 8), n_classes=10).predict_labels(x)
    for name in ("m.pt2", "m.ts"):
        oracle = load_target(tmp_path / name, input_shape=(1, 8, 8))
        assert oracle.n_classes == 10  # read from the output width of a probe batch
        np.testing.assert_array_equal(oracle.predict_labels(x), reference)
    with pytest.raises(InvalidInputError, match="a torch file does not record its input shape; give --input-shape"):
        load_target(tmp_path / "m.pt2")


def test_onnx_reads_shape_and_classes_from_metadata(tmp_path):
    pytest.importorskip("onnxruntime")
    import warnings

    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.rand(1, 2, 2, 3),),
            str(tmp_path / "m.onnx"),
            input_names=["img"],
            dynamic_axes={"img": {0: "n"}},
            dynamo=False,
        )
    oracle = load_target(tmp_path / "m.onnx", preprocess=Preprocessing(layout="nhwc"))
    assert oracle.input_shape == (3, 2, 2) and oracle.n_classes == 4  # channels first in the natural space
    x = np.random.default_rng(0).uniform(size=(7, 3, 2, 2)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 2, 3, 1)).argmax(1).numpy()
    np.testing.assert_array_equal(oracle.predict_labels(x), expected)
    with pytest.raises(InvalidInputError, match="--output: only ONNX models have named outputs"):
        (tmp_path / "m.pt2").write_bytes(b"")
        load_target(tmp_path / "m.pt2", output="x")


def test_csv_and_image_folder_candidates(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n0.5,10,2\n1.5,20,0\n2.5,30,10\n")
    x, y = load_labelled(csv, "members", (2,), (0.0, 100.0))
    np.testing.assert_array_equal(x, [[0.5, 10], [1.5, 20], [2.5, 30]])
    np.testing.assert_array_equal(y, [2, 0, 10])  # integer ids, not the lexicographic order of "0", "10", "2"
    with pytest.raises(DataFileError, match=r"values lie in \[0.5, 30\], outside the bounds \[0, 1\]"):
        load_labelled(csv, "members", (2,), (0.0, 1.0))
    csv.write_text("a,label\n0.5,cat\n")
    with pytest.raises(DataFileError, match="must hold integer class ids"):
        load_labelled(csv, "members", (1,), (0.0, 1.0))
    for cls, value in (("0", 0), ("1", 255)):
        (tmp_path / "img" / cls).mkdir(parents=True)
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(tmp_path / "img" / cls / "a.png")
    x, y = load_labelled(tmp_path / "img", "shadow", (1, 4, 4), (-1.0, 1.0))
    assert x.shape == (2, 1, 4, 4) and list(y) == [0, 1]
    assert x[0].max() == -1.0 and x[1].min() == 1.0  # pixels 0..255 mapped onto the bounds
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataFileError, match="expected an .npz with keys x and y, an image folder"):
        load_labelled(tmp_path / "d.txt", "members", (1,), (0.0, 1.0))


def test_model_file_audit_resumes_and_refuses_a_changed_model(tmp_path):
    pytest.importorskip("onnxruntime")
    write_linear_onnx(tmp_path / "m.onnx", 0)
    rng = np.random.default_rng(0)
    files = []
    for name in ("members", "nonmembers", "shadow"):
        np.savez(tmp_path / f"{name}.npz", x=rng.uniform(size=(30, 4)).astype(np.float32), y=rng.integers(0, 3, 30))
        files += [f"--{name}", str(tmp_path / f"{name}.npz")]
    args = [
        "audit",
        "--model",
        str(tmp_path / "m.onnx"),
        *files,
        "--attacks",
        "gap,boundary-hsja",
        "--queries",
        "60",
        "--noise-samples",
        "5",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    first = runner.invoke(app, args + ["--no-checkpoint"])
    assert first.exit_code == 0, first.output
    scores = (tmp_path / "out" / "scores.csv").read_text()
    rows = scores.splitlines()
    assert rows[1].startswith("gap,0,1,") and rows[31].startswith("gap,30,0,")  # members, then non-members
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["target"]["oracle"] == "OnnxOracle" and res["split"] == {
        "members": 30,
        "nonmembers": 30,
        "shadow_train": 15,
        "shadow_test": 15,
    }
    (tmp_path / "out").rename(tmp_path / "first")
    full = runner.invoke(app, args)
    assert full.exit_code == 0 and (tmp_path / "out" / "scores.csv").read_text() == scores
    assert "attacks_from_checkpoint" not in json.loads((tmp_path / "out" / "results.json").read_text())
    again = runner.invoke(app, args + ["--resume"])
    assert again.exit_code == 0 and (tmp_path / "out" / "scores.csv").read_text() == scores
    resumed = json.loads((tmp_path / "out" / "results.json").read_text())
    assert resumed["attacks_from_checkpoint"] == ["gap", "boundary-hsja"]  # said, so wall times can be read
    write_linear_onnx(tmp_path / "m.onnx", 1)  # same name, other weights
    changed = runner.invoke(app, args + ["--resume"])
    assert changed.exit_code == 2 and "--resume: the options differ" in changed.output


def test_python_api_returns_typed_results_written_as_results_json(tmp_path, blobs):
    import labelleak
    from labelleak.oracle import CallableOracle

    x, y = blobs
    oracle = CallableOracle(lambda a: (a[:, 0] > 0.5).astype(int) + (a[:, 1] > 0.5), input_shape=(6,), n_classes=3)
    res = labelleak.audit(
        target=oracle,
        members=(x[:30], y[:30]),
        nonmembers=(x[30:60], y[30:60]),
        shadow=(x[60:], y[60:]),
        attacks=["gap"],
        out=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        epochs=2,
        progress=False,
    )
    assert isinstance(res, labelleak.AuditResults)
    assert res.to_dict() == json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["attacks"]["gap"]["n_members"] == 30 and res.auc("gap") == res.attacks["gap"]["auc"]
    assert "gap" in str(res) and res.target["oracle"] == "CallableOracle"
    with pytest.raises(InvalidInputError, match=r"labels lie in 0..7, but the target has 3 classes"):
        labelleak.audit(
            target=oracle,
            members=(x[:30], np.arange(30) % 8),
            nonmembers=(x[30:60], y[30:60]),
            shadow=(x[60:], y[60:]),
            out=tmp_path / "o2",
            progress=False,
        )
