"""The audit configuration in sections: the command line is built from them, YAML may group keys by them, and an
argument left out is not the same as ``None``."""

from __future__ import annotations

import dataclasses
import importlib
from typing import get_args

import pytest
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.errors import InvalidInputError, LabelleakError
from labelleak.models.settings import LR_SCHEDULES
from labelleak.oracle import preprocess
from labelleak.oracle.remote import connect
from labelleak.pipeline import sections
from labelleak.pipeline.config import SECTIONS, AuditConfig, load_config, make_config
from labelleak.pipeline.fields import setting_of

api = importlib.import_module("labelleak.pipeline.api")
audit_module = importlib.import_module("labelleak.pipeline.audit")


def test_the_sections_spell_the_oracles_choices_as_the_oracle_does():
    assert get_args(sections.Layout) == get_args(preprocess.Layout)
    assert get_args(sections.RemoteProtocol) == connect.PROTOCOLS
    assert get_args(sections.LrSchedule) == LR_SCHEDULES


def test_every_key_belongs_to_exactly_one_section_in_the_flat_order():
    keys = [f.name for s in SECTIONS.values() for f in dataclasses.fields(s)]
    assert len(keys) == len(set(keys))
    assert [f.name for f in dataclasses.fields(AuditConfig)] == keys
    assert list(AuditConfig().to_dict()) == [k for k in keys if k != "repeats"]  # repeats only above 1


def test_yaml_keys_grouped_by_section_read_as_the_flat_ones(tmp_path):
    flat, grouped = tmp_path / "flat.yaml", tmp_path / "grouped.yaml"
    flat.write_text("dataset: npz\ndata: d.npz\nqueries: 500\ninput-shape: 3,8,8\nepochs: 3\n")
    grouped.write_text(
        "data: {dataset: npz, data: d.npz}\nsearch: {queries: 500}\nmodel_file: {input-shape: '3,8,8'}\n"
        "training:\n  epochs: 3\n"
    )
    assert load_config(grouped).to_dict() == load_config(flat).to_dict()
    assert load_config(grouped).input_shape == [3, 8, 8] and load_config(grouped).data == "d.npz"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("search: {epochs: 3}\ncolour: red\n")
    with pytest.raises(InvalidInputError, match=r"unknown key\(s\) \['search.epochs', 'colour'\]"):
        load_config(wrong)


def test_every_problem_names_its_key_and_a_literal_lists_its_choices():
    with pytest.raises(InvalidInputError) as err:
        make_config(protocol="grpc", relabel="twice", epochs=0, resume=True, fresh=True, seed="1")
    text = str(err.value)
    for part in (
        "protocol: expected one of labelleak, v2, rest, got 'grpc'",
        "relabel: expected once or online, got 'twice'",
        "epochs: expected a positive integer, got 0",
        "resume, fresh: give one",
        "seed: expected an integer, got '1'",
    ):
        assert part in text


def _captured_config(monkeypatch, module) -> list[AuditConfig]:
    seen: list[AuditConfig] = []

    def fake_run(cfg, **_):
        seen.append(cfg)
        raise LabelleakError("stopped before the audit")

    monkeypatch.setattr(module, "run_audit", fake_run)
    return seen


def test_audit_queries_none_means_no_cap_and_a_left_out_argument_the_default(monkeypatch):
    seen = _captured_config(monkeypatch, api)
    for kwargs in ({"queries": None}, {}):
        with pytest.raises(LabelleakError, match="stopped"):
            api.audit(attacks=["gap"], **kwargs)
    assert seen[0].queries is None and seen[1].queries == 2000
    with pytest.raises(InvalidInputError, match="seed: expected an integer, got None"):
        api.audit(seed=None)  # type: ignore[arg-type]  # not a value the key allows


def test_the_command_line_has_an_option_for_every_setting_that_declares_one():
    page = CliRunner().invoke(app, ["audit", "--help"], env={"COLUMNS": "250"}).output
    for section in SECTIONS.values():
        for f in dataclasses.fields(section):
            declared = setting_of(f)
            option = declared.option(f.name)
            if declared.cli:
                assert option in page and declared.help in page, option
            else:
                assert f"{option} " not in page, option  # a YAML key only
    assert "Remote" in page and "Model file" in page  # one heading per section


def test_options_and_switches_reach_the_config_as_given(monkeypatch, tmp_path):
    seen = _captured_config(monkeypatch, audit_module)
    args = [
        "audit",
        "--queries",
        "300",
        "--top-t",
        "0",
        "--no-checkpoint",
        "--resume",
        "--input-shape",
        "1,8,8",
        "--quiet",
    ]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "stopped before the audit" in result.output
    cfg = seen[0]
    assert (cfg.queries, cfg.checkpoint, cfg.resume, cfg.fresh, cfg.progress) == (300, False, True, False, False)
    assert cfg.input_shape == [1, 8, 8] and cfg.top_t == 0  # a zero is a value
    assert cfg.epochs == AuditConfig().epochs  # not given: the default
