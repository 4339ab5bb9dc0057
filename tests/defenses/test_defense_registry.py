"""The defense registry: every entry reaches what it names, output transforms keep labels, sweeps follow the table."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from labelleak.defenses import DEFENSES, OutputDefense, parse_defense
from labelleak.defenses.registry import OUTPUT_KINDS
from labelleak.defenses.sweep import DEFAULT_GRIDS, FAMILIES, point_spec, sweep_defenses
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, TrainSettings


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("entry", DEFENSES, ids=lambda d: d.name)
def test_every_entry_sets_a_field_the_training_reads_or_serves_an_output(entry):
    """A bare name lands on the field its entry names, and the settings or spec it makes are valid."""
    plan = parse_defense(f"dp=8+{entry.name}" if entry.name == "dp-lr" else entry.name)  # DP-SGD's rate only
    if entry.sets == "train":
        assert entry.key in _fields(TrainSettings) and plan.train[entry.key] == entry.default
        TrainSettings(**plan.train).check()
    elif entry.sets == "spec":
        assert entry.key in _fields(ModelSpec) and plan.spec[entry.key] == entry.default
    elif entry.sets == "output":
        assert entry.transform is not None and plan.output.kind == entry.key in OUTPUT_KINDS
    elif entry.sets == "label":
        assert plan.label_noise == entry.default > 0
    else:
        assert entry.sets == "public" and plan.public == entry.default


@pytest.mark.parametrize("kind", OUTPUT_KINDS[1:])
def test_output_transforms_keep_every_label_and_are_seeded(kind):
    p = torch.softmax(torch.randn(300, 7, generator=torch.Generator().manual_seed(1)) * 4, 1).double()
    p[:20, :2] = p[:20, :2].mean(1, keepdim=True)  # exact ties between the top two classes
    q = OutputDefense(kind, 2.0, seed=3).apply(p)
    assert q.shape == p.shape and q.dtype == p.dtype
    assert torch.equal(q.argmax(1), p.argmax(1))
    assert torch.equal(q, OutputDefense(kind, 2.0, seed=3).apply(p.clone()))  # same seed, same answers


def test_output_defense_refuses_unknown_kinds_and_bad_strengths():
    with pytest.raises(InvalidInputError, match=r"expected none, memguard, top1 or round, got 'blur'"):
        OutputDefense("blur")
    with pytest.raises(InvalidInputError, match="round: expected a whole number of decimals, got 1.5"):
        OutputDefense("round", 1.5)
    with pytest.raises(InvalidInputError, match=r"only one output defense \(memguard, top1, round\)"):
        parse_defense("memguard+top1")
    with pytest.raises(InvalidInputError, match="unknown policy 'sideways'; choose from auto, flips-crops"):
        parse_defense("augment=sideways")
    assert torch.equal(OutputDefense().apply(torch.eye(3)), torch.eye(3))  # none: the probabilities as they are


def test_sweep_families_and_grids_come_from_the_registry():
    swept = [d for d in DEFENSES if d.grid]
    assert FAMILIES == tuple(d.name for d in swept) and "augment" not in FAMILIES and "public" not in FAMILIES
    assert sweep_defenses() == ["none"] + [point_spec(d.name, v) for d in swept for v in d.grid]
    for family, grid in DEFAULT_GRIDS.items():
        for strength in grid:
            parse_defense(point_spec(family, strength))  # every default point is a valid specification
