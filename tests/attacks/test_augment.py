"""Augmentation that keeps the label: the policy per kind of data, and a clear refusal of one that does not suit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.defenses import check_defense_for_data, parse_defense
from labelleak.defenses.training import augment_batch, augment_policy
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, build_model
from labelleak.models.training import train_with_report


@pytest.mark.parametrize(
    "shape,expected", [((3, 32, 32), "flips-crops"), ((1, 8, 8), "shifts"), ((1, 28, 28), "shifts"), ((64,), "none")]
)
def test_auto_policy_per_kind_of_data(shape, expected):
    assert augment_policy("auto", shape) == expected


@pytest.mark.parametrize(
    "policy,shape,message",
    [
        ("flips-crops", (1, 8, 8), "flips change digits' labels"),
        ("shifts", (64,), "needs images"),
        ("flips-crops", (10,), "needs images"),
        ("wobble", (3, 32, 32), "unknown policy 'wobble'"),
    ],
)
def test_a_policy_that_does_not_suit_the_data_is_refused(policy, shape, message):
    with pytest.raises(InvalidInputError, match=message):
        augment_policy(policy, shape)


def test_explicit_policies_that_suit_are_kept():
    assert augment_policy("shifts", (3, 32, 32)) == "shifts"
    assert augment_policy("none", (64,)) == "none"
    assert TrainSettings(augment=True).augment == "auto" and TrainSettings(augment=False).augment == "none"
    assert parse_defense("augment").train == {"augment": "auto"}
    assert parse_defense("augment=shifts").train == {"augment": "shifts"}
    with pytest.raises(InvalidInputError, match="unknown policy 'flip'"):
        parse_defense("augment=flip")
    with pytest.raises(InvalidInputError, match="flips-crops suits natural 3-channel images"):
        check_defense_for_data(parse_defense("l2=1e-3+augment=flips-crops"), (1, 8, 8))


def test_flip_crop_moves_a_pixel_by_at_most_the_padding_and_may_mirror_it():
    x = torch.zeros(64, 3, 32, 32)
    x[:, :, 10, 5] = 1.0
    out = augment_batch(x, torch.Generator().manual_seed(0), "flips-crops")
    assert out.shape == x.shape
    for img in out[:, 0]:
        r, c = (img == 1).nonzero()[0].tolist() if (img == 1).any() else (None, None)
        assert r is not None and abs(r - 10) <= 4 and (abs(c - 5) <= 4 or abs(c - 26) <= 4)
    mirrored = sum(int((img[:, 16:] == 1).any()) for img in out[:, 0])
    assert 10 < mirrored < 54  # about half flipped


def test_shifts_keep_a_digit_near_where_it_was_and_are_seeded():
    x = torch.zeros(32, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0  # a centred blob
    a = augment_batch(x, torch.Generator().manual_seed(1), "shifts")
    b = augment_batch(x, torch.Generator().manual_seed(1), "shifts")
    assert torch.equal(a, b) and not torch.equal(a, x)
    grid = torch.arange(8.0)
    mass = a[:, 0].sum((1, 2))
    cy = (a[:, 0].sum(2) * grid).sum(1) / mass
    cx = (a[:, 0].sum(1) * grid).sum(1) / mass
    assert torch.all((cy - 3.5).abs() <= 1.0) and torch.all((cx - 3.5).abs() <= 1.0)  # 10% of 8 px, plus rotation
    assert torch.equal(augment_batch(x, torch.Generator(), "none"), x)


def test_training_refuses_flips_on_digits_and_runs_auto():
    x = np.random.default_rng(0).uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
    y = np.arange(16) % 2
    spec = ModelSpec("cnn2", (1, 8, 8), 2, width=0.25)
    with pytest.raises(InvalidInputError, match="flips change digits' labels"):
        train_with_report(build_model(spec), x, y, TrainSettings(epochs=1, augment="flips-crops"), n_classes=2,
                          progress=False)  # fmt: skip
    model, _ = train_with_report(build_model(spec), x, y, TrainSettings(epochs=1, augment="auto"), n_classes=2,
                                 progress=False)  # fmt: skip
    assert model(torch.from_numpy(x)).shape == (16, 2)


def test_defend_refuses_flips_on_digits_before_training(tmp_path):
    result = CliRunner().invoke(
        app, ["defend", "--defenses", "none,augment=flips-crops", "--out", str(tmp_path / "d"), "--quiet",
              "--cache-dir", str(tmp_path / "c")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: augment=flips-crops suits natural 3-channel images")
    assert not (tmp_path / "c").exists()  # nothing was trained
