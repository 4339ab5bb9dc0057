"""Training-time and output-time defenses, and the defense matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.defenses import OutputDefense, parse_defense
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, accuracy, build_model, init_model
from labelleak.models.training import train_with_report


def _noisy(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64)
    flip = rng.random(n) < 0.25
    y[flip] = 1 - y[flip]
    return x, y


def _train(settings: TrainSettings, spec: ModelSpec | None = None, n=160):
    x, y = _noisy()
    spec = spec or ModelSpec("mlp", (10,), 2, hidden=(128, 128))
    model, report = train_with_report(
        init_model(lambda: build_model(spec), 0), x[:n], y[:n], settings, n_classes=2, progress=False
    )
    return model, report, (x[:n], y[:n]), (x[n:], y[n:])


def _gap(settings: TrainSettings, spec: ModelSpec | None = None) -> float:
    model, _, tr, te = _train(settings, spec)
    return accuracy(model, *tr) - accuracy(model, *te)


BASE = dict(epochs=80, lr=3e-3, batch_size=32)


def test_dp_sgd_reports_finite_epsilon_that_shrinks_with_noise():
    _, low_noise, *_ = _train(TrainSettings(epochs=3, dp_noise_multiplier=0.6, batch_size=32))
    _, high_noise, *_ = _train(TrainSettings(epochs=3, dp_noise_multiplier=2.0, batch_size=32))
    assert np.isfinite(low_noise.epsilon) and np.isfinite(high_noise.epsilon)
    assert high_noise.epsilon < low_noise.epsilon
    _, target, *_ = _train(TrainSettings(epochs=3, dp_epsilon=4.0, batch_size=32))
    assert target.epsilon <= 4.0 + 0.05 and target.delta == 1e-5


def test_dp_sgd_refuses_batchnorm_and_accepts_groupnorm():
    x = np.random.default_rng(0).uniform(0, 1, (40, 3, 16, 16)).astype(np.float32)
    y = np.arange(40) % 2
    bn = ModelSpec("cnn3", (3, 16, 16), 2, width=0.125)
    with pytest.raises(InvalidInputError, match="build it with groupnorm=True"):
        train_with_report(
            build_model(bn), x, y, TrainSettings(epochs=1, dp_noise_multiplier=1.0), n_classes=2, progress=False
        )
    gn = ModelSpec("cnn3", (3, 16, 16), 2, width=0.125, groupnorm=True)
    _, report = train_with_report(
        build_model(gn), x, y, TrainSettings(epochs=1, dp_noise_multiplier=1.0), n_classes=2, progress=False
    )
    assert np.isfinite(report.epsilon)


def test_strong_regularisation_shrinks_the_generalisation_gap():
    plain = _gap(TrainSettings(**BASE))
    assert plain > 0.2  # the plain model memorises the label noise
    assert _gap(TrainSettings(**BASE, weight_decay=0.3)) < plain - 0.1
    assert _gap(TrainSettings(**BASE, l1=3e-3)) < plain - 0.1
    assert _gap(TrainSettings(**BASE, relaxloss=0.6)) < plain - 0.1


def test_relaxloss_keeps_the_training_loss_near_alpha():
    model, _, (x, y), _ = _train(TrainSettings(**BASE, relaxloss=0.5))
    with torch.no_grad():
        loss = float(F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))
    assert 0.3 < loss < 0.9


@pytest.mark.parametrize(
    "settings,spec",
    [
        (TrainSettings(**BASE, label_smoothing=0.2), None),
        (TrainSettings(**BASE, advreg=1.0), None),
        (TrainSettings(**BASE), ModelSpec("mlp", (10,), 2, hidden=(128, 128), dropout=0.5)),
    ],
)
def test_other_defenses_train_deterministically(settings, spec):
    a, *_ = _train(settings, spec)
    b, *_ = _train(settings, spec)
    x = torch.from_numpy(_noisy()[0])
    assert torch.equal(a(x), b(x))
    plain, *_ = _train(TrainSettings(**BASE))
    assert not torch.equal(a(x), plain(x))


def test_early_stopping_stops_and_augmentation_runs():
    _, report, *_ = _train(TrainSettings(**BASE, early_stopping=2))
    assert report.stopped_early and report.epochs_run < 80
    x = np.random.default_rng(0).uniform(0, 1, (32, 1, 8, 8)).astype(np.float32)
    spec = ModelSpec("cnn2", (1, 8, 8), 2, width=0.25)
    model, _ = train_with_report(
        build_model(spec), x, np.arange(32) % 2, TrainSettings(epochs=2, augment=True), n_classes=2, progress=False
    )
    assert model(torch.from_numpy(x)).shape == (32, 2)


@pytest.mark.parametrize(
    "defense", [OutputDefense("memguard", 3.0, seed=1), OutputDefense("top1"), OutputDefense("round", 1)]
)
def test_output_defenses_never_change_a_label(defense):
    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(0)) * 3
    p = torch.softmax(logits, 1).double()
    q = defense.apply(p)
    assert torch.equal(q.argmax(1), p.argmax(1))
    assert not torch.allclose(q, p)
    if defense.kind == "memguard":
        assert torch.allclose(q.sum(1), torch.ones(500, dtype=q.dtype))


def test_parse_defense():
    plan = parse_defense("l2=1e-3+dropout=0.3+augment")
    assert plan.train == {"weight_decay": 1e-3, "augment": "auto"} and plan.spec == {"dropout": 0.3}
    assert parse_defense("dp=4").spec == {"groupnorm": True} and parse_defense("dp=4").train["dp_epsilon"] == 4.0
    assert parse_defense("memguard").output.kind == "memguard"
    with pytest.raises(InvalidInputError, match="unknown defense 'l3'"):
        parse_defense("l3=1")
    with pytest.raises(InvalidInputError, match="expected a number"):
        parse_defense("l2=lots")
    with pytest.raises(InvalidInputError, match="only one output defense"):
        parse_defense("top1+round=2")
    public = parse_defense("dp=8+public=500")
    assert public.public == 500 and public.train["dp_epsilon"] == 8.0 and parse_defense("l2").public == 0
    with pytest.raises(InvalidInputError, match="'public': expected a positive number"):
        parse_defense("public=0")


def test_training_from_a_pretrained_model_starts_from_its_weights(tmp_path):
    from labelleak.models import ModelStore
    from labelleak.models.store import train_or_load

    x, y = _noisy()
    spec = ModelSpec("mlp", (10,), 2, hidden=(32,))
    store, tr, te = ModelStore(tmp_path), np.arange(100), np.arange(200, 240)
    pre = train_or_load(store, x, y, "fp", spec, TrainSettings(**BASE), np.arange(100, 200), te, role="p",
                        progress=False)  # fmt: skip
    frozen = TrainSettings(epochs=1, lr=1e-12, batch_size=32)  # a step too small to move any weight
    tuned = train_or_load(store, x, y, "fp", spec, frozen, tr, te, role="t", progress=False, init=pre)
    fresh = train_or_load(store, x, y, "fp", spec, frozen, tr, te, role="t", progress=False)
    state, start = tuned.model.state_dict(), pre.model.state_dict()
    assert all(torch.allclose(state[k], start[k]) for k in start)
    assert not all(torch.allclose(fresh.model.state_dict()[k], start[k]) for k in start)
    # the two targets differ only by their start, and their cache keys tell them apart
    assert (
        tuned.path != fresh.path
        and json.loads((tuned.path / "config.json").read_text())["meta"]["settings"]["init"] == pre.path.name
    )


def test_defend_command_writes_the_matrix(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "defend",
            "--defenses",
            "none,l2=0.05,memguard=2,top1",
            "--attacks",
            "gap,score-loss",
            "--train-size",
            "60",
            "--epochs",
            "10",
            "--quiet",
            "--out",
            str(tmp_path / "d"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["defense"]: r for r in json.loads((tmp_path / "d" / "matrix.json").read_text())["rows"]}
    assert set(rows) == {"none", "l2=0.05", "memguard=2", "top1"}
    # output defenses keep every label: the label-only attack sees exactly the same target
    assert rows["memguard=2"]["gap.auc"] == rows["none"]["gap.auc"] == rows["top1"]["gap.auc"]
    assert rows["top1"]["score-loss.auc"] != rows["none"]["score-loss.auc"]
    assert rows["l2=0.05"]["train_accuracy"] < rows["none"]["train_accuracy"]
    for name in ("matrix.csv", "matrix.md", "privacy_utility.png"):
        assert (tmp_path / "d" / name).is_file()
    bad = CliRunner().invoke(app, ["defend", "--defenses", "none,wat", "--out", str(tmp_path / "x"), "--quiet"])
    assert bad.exit_code == 2 and "unknown defense 'wat'" in bad.output
