"""The adaptive evaluation (issue 33, item 1): the adversary knows the target's defense, so its shadow and
reference models train with it and answer through its output-time part; ``non_adaptive`` keeps the old way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labelleak.attacks import ShadowRecipe, create_attack
from labelleak.attacks._shadow import probabilities
from labelleak.attacks.base import ShadowData
from labelleak.defenses import parse_defense
from labelleak.defenses.output import round_decimals
from labelleak.metrics import bootstrap_auc
from labelleak.oracle import TorchOracle
from labelleak.oracle.hamp import HampScoreOracle
from labelleak.oracle.scores import DefendedScoreOracle
from labelleak.oracle.smoothed import SmoothedLabelOracle, smooth_labels
from labelleak.pipeline.audit import attack_params
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.trained import prepare_local


def _stored(cache: Path, role: str) -> list[dict]:
    """The config.json of every model of ``role`` in a model cache: its spec and recorded settings."""
    found = [json.loads(p.read_text()) for p in cache.rglob("config.json")]
    return [c for c in found if c["meta"].get("role") == role]


def _cfg(tmp_path: Path, **kw) -> AuditConfig:
    base = dict(train_size=60, epochs=2, cache_dir=str(tmp_path / "cache"), progress=False, seed=1)
    return AuditConfig(**{**base, **kw})


@pytest.mark.parametrize("adaptive", [True, False])
def test_the_shadow_model_of_a_defended_target_trains_with_the_defense_unless_non_adaptive(tmp_path, adaptive):
    setup = prepare_local(_cfg(tmp_path, defense="l2=0.01+dropout=0.3+round=1", non_adaptive=not adaptive))
    (shadow,) = _stored(tmp_path / "cache", "shadow")
    (target,) = _stored(tmp_path / "cache", "target")
    assert target["meta"]["settings"]["weight_decay"] == 0.01 and target["spec"]["dropout"] == 0.3
    assert shadow["meta"]["settings"]["weight_decay"] == (0.01 if adaptive else 0.0)
    assert shadow["spec"]["dropout"] == (0.3 if adaptive else 0.0)
    assert setup.target["evaluation"] == ("adaptive" if adaptive else "non-adaptive")
    assert setup.adversary_defense == ("l2=0.01+dropout=0.3+round=1" if adaptive else "none")
    # the shadow score oracle answers rounded like the target's, adaptively only
    p = setup.shadow_score_oracle.predict_proba(setup.x[:20])
    rounded = torch.allclose(p, torch.round(p * 10) / 10, atol=1e-9)
    assert rounded == adaptive
    # and every attack's recipe carries what the adversary knows
    recipe = attack_params("lira", _cfg(tmp_path), setup)["shadow_recipe"]
    assert recipe.defense == setup.adversary_defense


@pytest.mark.parametrize("adaptive", [True, False])
def test_the_adversary_s_models_start_from_the_public_model_adaptively(tmp_path, adaptive):
    cfg = _cfg(tmp_path, defense="l2=0.01+public=50", non_adaptive=not adaptive)
    setup = prepare_local(cfg)
    recipe = attack_params("lira", cfg, setup)["shadow_recipe"]
    assert recipe.init == setup.adversary_init and (setup.adversary_init is not None) == adaptive
    if not adaptive:
        return
    (public,) = _stored(tmp_path / "cache", "public pre-training")
    shadow = setup.shadow_data
    model = recipe.train(shadow.x_train[:40], shadow.y_train[:40], input_shape=(1, 8, 8), n_classes=10, seed=5)
    (stored,) = _stored(tmp_path / "cache", "adversary: shadow")
    assert stored["meta"]["settings"]["init"] == Path(setup.adversary_init).name  # keyed apart from a fresh start
    assert stored["spec"] == public["spec"]
    fresh = ShadowRecipe(**{**recipe.__dict__, "init": None, "cache_dir": None})
    scratch = fresh.train(shadow.x_train[:40], shadow.y_train[:40], input_shape=(1, 8, 8), n_classes=10, seed=5)
    assert not torch.equal(next(model.parameters()), next(scratch.parameters()))  # another start, another model


def test_an_undefended_target_trains_the_same_shadow_model_either_way(tmp_path):
    prepare_local(_cfg(tmp_path))
    prepare_local(_cfg(tmp_path, non_adaptive=True))
    assert len(_stored(tmp_path / "cache", "shadow")) == 1  # one cache key: nothing changes without a defense


def test_a_recipe_with_a_training_defense_trains_and_caches_its_models_apart(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    cache = tmp_path / "adv"
    kw = dict(hidden=(8,), epochs=2, batch_size=20, cache_dir=str(cache))
    for defense in ("none", "l2=0.01", "round=1"):  # round is output-time only: the plain model's key
        ShadowRecipe(**kw, defense=defense).train(x, y, input_shape=(5,), n_classes=3, seed=3)
    stored = _stored(cache, "adversary: shadow")
    assert sorted(c["meta"]["settings"]["weight_decay"] for c in stored) == [0.0, 0.01]


def test_an_output_defense_changes_what_reference_models_answer(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.random((60, 5)).astype(np.float32), rng.integers(0, 3, 60)
    shadow = ShadowData(x[20:40], y[20:40], x[40:], y[40:])
    kw = dict(hidden=(16,), epochs=3, batch_size=20, cache_dir=str(tmp_path / "adv"))
    plain, rounding = ShadowRecipe(**kw), ShadowRecipe(**kw, defense="round=1")
    model = plain.train(x[:20], y[:20], input_shape=(5,), n_classes=3, seed=0)
    raw = probabilities(model, x[:20])
    assert torch.equal(plain.reveal(model, x[:20], 0), raw)
    assert torch.equal(rounding.reveal(model, x[:20], 0), round_decimals(raw, 1, 0))
    assert not torch.allclose(rounding.reveal(model, x[:20], 0), raw)
    # LiRA's reference phis come from the rounded answers: the same models, other scores
    lira = {
        r.defense: create_attack("lira", n_reference=2, shadow_recipe=r, reference_size=20) for r in (plain, rounding)
    }
    target = DefendedScoreOracle(model, defense=parse_defense("round=1").output, input_shape=(5,), n_classes=3)
    scores = {d: a(target, x[:20], y[:20], shadow=shadow).scores for d, a in lira.items()}
    assert not np.allclose(scores["none"], scores["round=1"])


def test_hamp_and_label_noise_change_what_reference_models_answer():
    rng = np.random.default_rng(2)
    x, y = rng.random((40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    kw = dict(hidden=(16,), epochs=3, batch_size=20)
    model = ShadowRecipe(**kw).train(x, y, input_shape=(5,), n_classes=3, seed=0)
    raw = probabilities(model, x)
    hamp, noise = ShadowRecipe(**kw, defense="hamp=0.9"), ShadowRecipe(**kw, defense="label-noise=0.25")
    assert hamp.modifies_answers() and noise.modifies_answers() and not ShadowRecipe(**kw).modifies_answers()
    # HAMP: the scores of random samples in the query's order of classes, the label unchanged
    want = HampScoreOracle(model, input_shape=(5,), n_classes=3, seed=4).predict_proba(x)
    got = hamp.reveal(model, x, 4)
    assert torch.equal(got, want) and not torch.allclose(got, raw) and torch.equal(got.argmax(1), raw.argmax(1))
    # label randomisation: the vote shares of 15 noised copies, as a smoothed target answers
    plain = TorchOracle(model, input_shape=(5,), n_classes=3)
    shares = noise.reveal(model, x, 4)
    assert torch.equal(shares, smooth_labels(plain, 0.25, seed=4).predict_proba(x))
    assert torch.equal(shares * 15, torch.round(shares * 15)) and not torch.allclose(shares, raw)


def test_reference_models_label_through_label_noise_for_the_label_only_attacks():
    from labelleak.attacks._reference_search import served_references
    from labelleak.attacks.dhattack import model_classifier

    rng = np.random.default_rng(3)
    x, y = rng.random((40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    kw = dict(hidden=(16,), epochs=3, batch_size=20)
    models = [ShadowRecipe(**kw).train(x, y, input_shape=(5,), n_classes=3, seed=s) for s in (0, 1)]
    noise, plain = ShadowRecipe(**kw, defense="label-noise=0.5"), ShadowRecipe(**kw, defense="l2=0.01")
    target = TorchOracle(models[0], input_shape=(5,), n_classes=3)
    assert served_references(plain, models, target, 7) == models  # no label randomisation: the models' argmax
    served = served_references(noise, models, target, 7)
    assert all(isinstance(o, SmoothedLabelOracle) for o in served) and [o.seed for o in served] == [8, 9]
    votes = smooth_labels(TorchOracle(models[1], input_shape=(5,), n_classes=3), 0.5, seed=9).predict_labels(
        torch.from_numpy(x)
    )
    assert torch.equal(model_classifier(served[1], (5,))(torch.from_numpy(x), torch.arange(40)), votes)
    argmax = probabilities(models[1], x).argmax(1)
    assert not torch.equal(votes, argmax)  # sigma 0.5 on inputs in [0, 1]: some votes differ from the argmax
    assert torch.equal(noise.labeller(models[1], n_classes=3, seed=9)(torch.from_numpy(x)), votes)
    assert torch.equal(plain.labeller(models[1], n_classes=3, seed=9)(torch.from_numpy(x)), argmax)


@pytest.mark.parametrize("adaptive", [True, False])
def test_the_shadow_model_answers_through_label_noise_and_hamp_adaptively(tmp_path, adaptive):
    noisy = prepare_local(_cfg(tmp_path, defense="label-noise=0.1", non_adaptive=not adaptive))
    assert isinstance(noisy.oracle, SmoothedLabelOracle)  # the target always answers through its defense
    assert 0 <= noisy.target["served_test_accuracy"] <= 1 and 0 <= noisy.target["served_train_accuracy"] <= 1
    assert noisy.oracle.queries == 0  # measuring the served accuracy is not the adversary's: --max-total-queries
    assert isinstance(noisy.shadow_oracle, SmoothedLabelOracle) == adaptive
    assert isinstance(noisy.shadow_score_oracle, SmoothedLabelOracle) == adaptive
    hamp = prepare_local(_cfg(tmp_path, defense="hamp=0.9", non_adaptive=not adaptive))
    assert isinstance(hamp.score_oracle, HampScoreOracle)
    assert isinstance(hamp.shadow_score_oracle, HampScoreOracle) == adaptive


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on cores that other processes share."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_lira_under_rounding_is_below_chance_non_adaptively_and_not_adaptively(tmp_path, one_thread):
    """A planted case of the miscalibration: a target served with ``round=1`` answers many members with p_y = 1,
    phi at its clamp (about 690), far beyond the unrounded reference models' phis; their Gaussians, pooled sigma_in
    below sigma_out, put those members below the non-members. Reference models served rounded too see the same
    clamp, and the attack is no longer below chance."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (4, 10))
    y = rng.integers(0, 4, 400)
    x = centers[y] + rng.normal(0, 1, (400, 10))
    x = ((x - x.min()) / (x.max() - x.min())).astype(np.float32)
    kw = dict(hidden=(32,), epochs=80, lr=1e-2, batch_size=25, cache_dir=str(tmp_path / "adv"))
    model = ShadowRecipe(**kw).train(x[:100], y[:100], input_shape=(10,), n_classes=4, seed=99).eval()
    target = DefendedScoreOracle(model, defense=parse_defense("round=1").output, input_shape=(10,), n_classes=4)
    shadow = ShadowData(x[200:300], y[200:300], x[300:], y[300:])
    is_member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    auc = {}
    for defense in ("none", "round=1"):  # the reference models are the same (round is output-time only)
        lira = create_attack("lira", n_reference=4, shadow_recipe=ShadowRecipe(**kw, defense=defense), seed=0)
        scores = lira(target, x[:200], y[:200], shadow=shadow).scores
        auc[defense] = bootstrap_auc(is_member, scores)
    assert auc["none"].value < 0.5  # non-adaptive: below chance, which is miscalibration, not protection
    assert auc["round=1"].high >= 0.5 and auc["round=1"].value > 0.5  # adaptive: at least chance within its interval
    assert auc["round=1"].value > auc["none"].value + 0.05


@pytest.mark.parametrize("flag", [[], ["--non-adaptive"]])
def test_defend_passes_non_adaptive_to_every_audit(monkeypatch, tmp_path, flag):
    from typer.testing import CliRunner

    from labelleak.cli import app
    from labelleak.errors import LabelleakError
    from labelleak.pipeline import defend

    seen = []

    def run_defend(cfg, chosen, **kw):
        seen.append(cfg)
        raise LabelleakError("stop here")

    monkeypatch.setattr(defend, "run_defend", run_defend)
    CliRunner().invoke(app, ["defend", "--defenses", "round=1", "--out", str(tmp_path), *flag])
    (cfg,) = seen
    assert cfg.non_adaptive is bool(flag)
