"""Crafted model files run no code: each attack is first shown to run code through torch or skops itself, then
labelleak's loader must refuse the same file with one line and leave no marker behind."""

from __future__ import annotations

import io
import json
import pathlib
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.errors import DataFileError
from labelleak.oracle.archive_checks import check_export_archive
from labelleak.oracle.files import load_target
from labelleak.oracle.skops_trust import is_safe_type

runner = CliRunner()


class _Touch:
    """Unpickling this creates ``marker`` (a stand-in for ``os.system``)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()


def _export(path: pathlib.Path) -> pathlib.Path:
    ep = torch.export.export(_net(), (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, path)
    return path


def _rewrite(src: pathlib.Path, dst: pathlib.Path, edit) -> pathlib.Path:
    """Copy the archive ``src`` to ``dst`` with ``edit(entries)`` applied to a dict name -> bytes."""
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    edit(entries)
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return dst


def _root(entries: dict) -> str:
    return next(iter(entries)).split("/", 1)[0]


def _pickled_weight(marker):
    def edit(entries):
        root = _root(entries)
        config_name = f"{root}/data/weights/model_weights_config.json"
        config = json.loads(entries[config_name])
        config["config"]["0.weight"]["use_pickle"] = True
        entries[config_name] = json.dumps(config).encode()
        entries[f"{root}/data/weights/weight_0"] = pickle.dumps(_Touch(marker))

    return edit


def _opaque_constant(marker):
    def edit(entries):
        root = _root(entries)
        entries[f"{root}/data/constants/model_constants_config.json"] = json.dumps(
            {"config": {"c": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}
        ).encode()
        entries[f"{root}/data/constants/opaque_obj_0"] = pickle.dumps(_Touch(marker))

    return edit


def _sample_inputs(marker):
    def edit(entries):
        buffer = io.BytesIO()
        torch.save(_Touch(marker), buffer)  # weights_only=True refuses it, and torch then unpickles it in full
        entries[f"{_root(entries)}/data/sample_inputs/model.pt"] = buffer.getvalue()

    return edit


def _program_edit(change):
    def edit(entries):
        name = f"{_root(entries)}/models/model.json"
        program = json.loads(entries[name])
        change(program)
        entries[name] = json.dumps(program).encode()

    return edit


def _sympy_payload(marker):
    code = f"__import__('pathlib').Path('{marker}').touch()"

    def change(program):
        program["graph_module"]["graph"]["tensor_values"]["input"]["sizes"][0] = {"as_expr": {"expr_str": code}}

    return _program_edit(change)


CODE_RUNNING = {
    "pickled weight": _pickled_weight,
    "opaque constant": _opaque_constant,
    "sample inputs": _sample_inputs,
    "symbolic shape": _sympy_payload,
}


@pytest.mark.parametrize("attack", sorted(CODE_RUNNING))
def test_a_crafted_pt2_runs_code_in_torch_but_not_in_labelleak(tmp_path, attack):
    good = _export(tmp_path / "good.pt2")
    evil = _rewrite(good, tmp_path / "evil.pt2", CODE_RUNNING[attack](tmp_path / "torch-ran-it"))
    try:
        torch.export.load(evil)
    except Exception:
        pass
    assert (tmp_path / "torch-ran-it").exists(), "the crafted file no longer runs code in torch: test is stale"

    marker = tmp_path / "labelleak-ran-it"
    evil = _rewrite(good, tmp_path / "evil2.pt2", CODE_RUNNING[attack](marker))
    with pytest.raises(DataFileError, match="refusing to load this torch file"):
        load_target(evil, input_shape=(1, 8, 8))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.__setitem__("guards_code", ["import os"]), "guard code"),
        (
            lambda p: p["graph_module"]["graph"]["nodes"][0].__setitem__("target", "torch.serialization.os.system"),
            "'torch.serialization.os.system' is not an aten or prims operator",
        ),
        (
            lambda p: p["graph_module"]["graph"]["nodes"][0].__setitem__("target", "torch.ops.aten.from_file.default"),
            "not an aten or prims operator",
        ),
        (lambda p: p["range_constraints"].__setitem__("s0.__class__", {}), "is not an arithmetic expression"),
    ],
)
def test_programs_that_could_call_python_are_refused(tmp_path, change, message):
    evil = _rewrite(_export(tmp_path / "good.pt2"), tmp_path / "evil.pt2", _program_edit(change))
    with pytest.raises(DataFileError, match=message):
        check_export_archive(evil.read_bytes(), evil)


def test_unexpected_entries_are_refused(tmp_path):
    def add_library(entries):
        entries[f"{_root(entries)}/data/aotinductor/model/model.so"] = b"\x7fELF"

    evil = _rewrite(_export(tmp_path / "good.pt2"), tmp_path / "evil.pt2", add_library)
    with pytest.raises(DataFileError, match="unexpected entry 'data/aotinductor/model/model.so'"):
        load_target(evil, input_shape=(1, 8, 8))


def test_plain_exported_and_traced_files_still_load_and_answer_like_the_module(tmp_path):
    net, x = _net(), torch.rand(5, 1, 8, 8)
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 8, 8)), tmp_path / "traced.pt")
    for path in (_export(tmp_path / "m.pt2"), tmp_path / "traced.pt"):
        oracle = load_target(path, input_shape=(1, 8, 8))
        np.testing.assert_array_equal(oracle.predict_labels(x.numpy()), net(x).argmax(1).numpy())


def test_a_torchscript_pickle_naming_a_python_global_is_refused(tmp_path):
    torch.jit.save(torch.jit.script(nn.Linear(4, 3)), tmp_path / "m.pt")

    def evil_constants(entries):
        entries[f"{_root(entries)}/constants.pkl"] = pickle.dumps(_Touch(tmp_path / "x"), protocol=2)

    evil = _rewrite(tmp_path / "m.pt", tmp_path / "evil.pt", evil_constants)
    with pytest.raises(DataFileError, match=r"constants.pkl imports .__builtin__ getattr."):
        load_target(evil, input_shape=(4,))
    assert not (tmp_path / "x").exists()


def test_the_cli_refuses_a_crafted_pt2_in_one_line(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("members", "nonmembers", "shadow"):
        np.savez(tmp_path / f"{name}.npz", x=rng.uniform(size=(10, 1, 8, 8)).astype(np.float32), y=np.arange(10) % 3)
    marker = tmp_path / "ran"
    evil = _rewrite(_export(tmp_path / "good.pt2"), tmp_path / "evil.pt2", _pickled_weight(marker))
    files = [f"--{n}={tmp_path / n}.npz" for n in ("members", "nonmembers", "shadow")]
    result = runner.invoke(
        app, ["audit", "--model", str(evil), "--input-shape", "1,8,8", *files, "--attacks", "gap", "--quiet",
              "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "payload '0.weight' is pickled" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer", True),
        ("numpy.float64", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("numpy.save", False),  # a function: FunctionTransformer(func=numpy.save) writes files at predict time
        ("numpy.testing._private.utils.runstring", False),  # runs exec
        ("sklearn.utils._testing.assert_run_python_script_without_output", False),
        ("numpy.lib._datasource.DataSource", False),  # a class, but not a data type
        ("scipy.io.savemat", False),
        ("os.system", False),
        ("sklearn.__class__", False),
    ],
)
def test_skops_trusts_library_classes_and_data_types_only(name, safe):
    assert is_safe_type(name) is safe


def test_a_skops_file_calling_a_numpy_function_is_refused(tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(0)
    est = make_pipeline(FunctionTransformer(np.save, kw_args={"arr": 0}), LogisticRegression())
    est.steps[1][1].fit(rng.uniform(size=(30, 4)), np.arange(30) % 3)
    sio.dump(est, tmp_path / "m.skops")
    with pytest.raises(DataFileError, match="refusing to load numpy.save"):
        load_target(tmp_path / "m.skops")
