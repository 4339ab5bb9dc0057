"""Issue 12: every bad model file or declaration gives a one-line error and exit code 2 before any attack."""

from __future__ import annotations

import operator
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from labelleak.cli import app

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

runner = CliRunner()
W = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)


def _onnx_model(path, *, scores_cols: int = 3, labels_offset: int | None = None, nan: bool = False, both=False):
    """A linear model on 4 features: scores (N, scores_cols) = x W, optionally NaN, and/or int labels + offset."""
    w = np.random.default_rng(0).normal(size=(4, scores_cols)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["scores"])]
    inits = [numpy_helper.from_array(w, "w")]
    outputs = []
    if nan:
        inits.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
        nodes[0] = helper.make_node("MatMul", ["x", "w"], ["raw"])
        nodes.append(helper.make_node("Mul", ["raw", "nan"], ["scores"]))
    if labels_offset is None or both:
        outputs.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", scores_cols]))
    if labels_offset is not None:
        inits.append(numpy_helper.from_array(np.array(labels_offset, np.int64), "offset"))
        nodes += [
            helper.make_node("ArgMax", ["scores"], ["argmax"], axis=1, keepdims=0),
            helper.make_node("Add", ["argmax", "offset"], ["labels"]),
        ]
        outputs.append(helper.make_tensor_value_info("labels", TensorProto.INT64, ["n"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])], outputs, initializer=inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("members", "nonmembers", "shadow"):
        np.savez(tmp_path / f"{name}.npz", x=rng.uniform(size=(20, 4)).astype(np.float32), y=rng.integers(0, 3, 20))
    return [
        "--members",
        str(tmp_path / "members.npz"),
        "--nonmembers",
        str(tmp_path / "nonmembers.npz"),
        "--shadow",
        str(tmp_path / "shadow.npz"),
    ]


def _audit(tmp_path, data, *extra):
    result = runner.invoke(
        app,
        [
            "audit",
            *data,
            "--attacks",
            "gap",
            "--epochs",
            "2",
            "--noise-samples",
            "5",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            *extra,
        ],
    )
    return result


def _fails(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 or "error:" in result.output.splitlines()[0]


def test_pickle_and_torch_save_files_are_refused(tmp_path, data):
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _fails(
        _audit(tmp_path, data, "--model", str(pkl)), "refusing to load a pickle file: unpickling can run arbitrary code"
    )
    joblib = tmp_path / "model.joblib"
    joblib.write_bytes(b"\x80\x04junk")
    _fails(_audit(tmp_path, data, "--model", str(joblib)), "skops.io.dump(model, 'model.skops')")
    pt = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(4, 3).state_dict(), pt)
    _fails(_audit(tmp_path, data, "--model", str(pt)), "refusing to load a torch.save file (a pickle)")


def test_wrong_input_shape_names_the_models_expected_shape(tmp_path, data):
    model = _onnx_model(tmp_path / "m.onnx")
    _fails(
        _audit(tmp_path, data, "--model", str(model), "--input-shape", "1,2,2"),
        "the model's input 'x' expects samples of shape (4), --input-shape 1,2,2 gives (1, 2, 2)",
    )


def test_wrong_input_shape_of_a_torchscript_model_fails_at_the_probe(tmp_path, data):
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), path)
    _fails(
        _audit(tmp_path, data, "--model", str(path), "--input-shape", "5"),
        "probe batch of shape (2, 5): the model failed (RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    )


def test_labels_out_of_range(tmp_path, data):
    model = _onnx_model(tmp_path / "m.onnx", labels_offset=20)
    _fails(
        _audit(tmp_path, data, "--model", str(model), "--n-classes", "3"),
        "probe batch: the model answered label 2",
    )


def test_several_outputs_need_output_name(tmp_path, data):
    model = _onnx_model(tmp_path / "m.onnx", labels_offset=0, both=True)
    _fails(_audit(tmp_path, data, "--model", str(model)), "the model has 2 outputs (scores, labels); choose")
    _fails(_audit(tmp_path, data, "--model", str(model), "--output", "probs"), "no output named 'probs'")
    ok = _audit(tmp_path, data, "--model", str(model), "--output", "scores")
    assert ok.exit_code == 0, ok.output


def test_nan_from_the_model(tmp_path, data):
    model = _onnx_model(tmp_path / "m.onnx", nan=True)
    _fails(_audit(tmp_path, data, "--model", str(model)), "the model's output contains NaN")


def test_a_model_that_is_not_a_classifier(tmp_path, data):
    model = _onnx_model(tmp_path / "m.onnx", scores_cols=1)
    _fails(_audit(tmp_path, data, "--model", str(model)), "not a classifier")
    script = tmp_path / "regressor.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 1)), script)
    _fails(_audit(tmp_path, data, "--model", str(script), "--input-shape", "4"), "not a classifier")


def test_skops_untrusted_types_are_refused_unless_trusted(tmp_path, data):
    sio = pytest.importorskip("skops.io")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    est = make_pipeline(FunctionTransformer(func=operator.neg), DecisionTreeClassifier(random_state=0))
    est.fit(rng.uniform(size=(30, 4)), np.arange(30) % 3)
    sio.dump(est, tmp_path / "m.skops")
    _fails(
        _audit(tmp_path, data, "--model", str(tmp_path / "m.skops")),
        "refusing to load _operator.neg (functions, and types that are not scikit-learn classes or NumPy/SciPy "
        "data types, can run code at predict time); if you trust them, pass --trust _operator.neg",
    )
    ok = _audit(tmp_path, data, "--model", str(tmp_path / "m.skops"), "--trust", "_operator.neg")
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "m.onnx", "--target", "http://x"], "give one target, a model file (--model) or a URL"),
        (["--bounds", "1,0"], "bounds: expected LOW,HIGH with LOW < HIGH"),
        (["--layout", "chw"], "layout: expected nchw or nhwc"),
        (["--input-shape", "3,x"], "input_shape: expected positive integers"),
        (["--model", "missing.onnx"], "model file not found: missing.onnx"),
        (["--model", "model.h5"], "unknown model format .h5"),
    ],
)
def test_bad_declarations(tmp_path, data, extra, message):
    if "model.h5" in extra:
        (tmp_path / "model.h5").write_bytes(b"x")
        extra = ["--model", str(tmp_path / "model.h5")]
    _fails(_audit(tmp_path, data, *extra), message)


def test_every_config_problem_at_once(tmp_path):
    result = runner.invoke(app, ["audit", "--model", "m.onnx", "--std", "0", "--n-classes", "1", "--quiet"])
    _fails(result, "members, nonmembers, shadow: an audit of a model file needs")
    assert "std: expected one positive number" in result.output and "n_classes: expected an integer" in result.output


def test_data_outside_the_declared_bounds(tmp_path):
    model = _onnx_model(tmp_path / "m.onnx")
    for name in ("members", "nonmembers", "shadow"):
        np.savez(tmp_path / f"{name}.npz", x=np.full((5, 4), 3.0, np.float32), y=np.zeros(5, np.int64))
    files = [
        "--members",
        str(tmp_path / "members.npz"),
        "--nonmembers",
        str(tmp_path / "nonmembers.npz"),
        "--shadow",
        str(tmp_path / "shadow.npz"),
    ]
    _fails(_audit(tmp_path, files, "--model", str(model)), "values lie in [3, 3], outside the bounds [0, 1]")


def test_the_model_files_sha256_is_in_the_provenance(tmp_path, data):
    import hashlib
    import json

    model = _onnx_model(tmp_path / "m.onnx")
    ok = _audit(tmp_path, data, "--model", str(model))
    assert ok.exit_code == 0, ok.output
    recorded = json.loads((tmp_path / "out" / "results.json").read_text())["provenance"]["sha256"]["model"]
    assert recorded == {"path": str(model), "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
