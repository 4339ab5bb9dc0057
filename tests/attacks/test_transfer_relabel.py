"""The transfer attack's online relabelling (the official code's shadow training) and the RandAugment it uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from labelleak.attacks import ShadowData, ShadowRecipe, Status, audit_params, create_attack
from labelleak.attacks._relabel import OnlineRelabelling, batch_sizes
from labelleak.attacks.transfer import TransferAttack, posterior_scores
from labelleak.cli import app
from labelleak.defenses.training import hamp_soft_labels, prediction_entropy, soft_cross_entropy
from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, predict_logits, train_model
from labelleak.models.randaugment import RANDAUGMENT_OPS, rand_augment
from labelleak.models.training import batch_objective
from labelleak.oracle import CallableOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger
from labelleak.pipeline.checkpoint import run_identity
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.estimate import estimate
from labelleak.pipeline.plan import load_plan

SHAPE = (1, 8, 8)
RECIPE = dict(arch="mlp", hidden=(32,), lr=3e-3, batch_size=16)


@pytest.fixture(scope="module")
def world():
    """Digits as 1x8x8 images in [0, 1]: a target trained on 120 of them, shadow sets and candidates apart."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x, y = (d.images[order, None] / 16).astype(np.float32), d.target[order]
    spec = ModelSpec("mlp", SHAPE, 10, hidden=(64,))
    target = train_model(
        init_model(lambda: build_model(spec), 0),
        x[:120],
        y[:120],
        TrainSettings(epochs=30, lr=3e-3, batch_size=32),
        n_classes=10,
        progress=False,
    )
    shadow = ShadowData(x[300:352], y[300:352], x[400:420], y[400:420])  # 52 shadow-train, 20 held-out
    cand_x, cand_y = np.r_[x[:30], x[200:230]], np.r_[y[:30], y[200:230]]
    return dict(target=target, shadow=shadow, x=cand_x, y=cand_y)


def _oracle(world, seen=None):
    """The target as a label oracle; ``seen`` collects every batch it is asked."""

    def labels(batch: np.ndarray) -> np.ndarray:
        if seen is not None:
            seen.append(batch.copy())
        with torch.no_grad():
            return world["target"](torch.from_numpy(batch)).argmax(1).numpy()

    return CallableOracle(labels, input_shape=SHAPE, n_classes=10)


def _online(**changes):
    return create_attack("transfer", **{**RECIPE, "epochs": 3, "relabel": "online", **changes})


def test_online_relabelling_asks_the_target_about_augmented_views_and_counts_every_query(world):
    seen: list[np.ndarray] = []
    result = _online(batch_size=17)(_oracle(world, seen), world["x"], world["y"], shadow=world["shadow"])
    # 52 shadow images in batches of 17, 17, 17, 1: the batch of one is skipped, as training skips it
    assert batch_sizes(52, 17) == [17, 17, 17]
    assert result.setup_queries == result.extras["relabel_queries"] == 20 + 3 * 51
    assert [len(b) for b in seen] == [20] + [17] * 9 + [60]  # held-out set, 3 epochs x 3 batches, candidates
    np.testing.assert_array_equal(seen[0], world["shadow"].x_test)
    views = np.concatenate(seen[1:-1]).reshape(-1, 64)
    originals = world["shadow"].x_train.reshape(-1, 64)
    nearest = np.abs(views[:, None, :] - originals[None]).max(-1).min(1)
    assert (nearest < 1e-6).mean() < 0.25  # most views are not any shadow image as it is
    assert result.queries.tolist() == [1] * 60
    assert result.extras["relabel_epochs_run"] == 3 and result.extras["relabel_budget_hit"] is False


def test_budget_cap_stops_relabelling_before_a_batch_it_cannot_pay(world):
    # room for the held-out set (20), one epoch (48: three batches of 16) and 20 more: one batch of epoch 2
    cap = 60 + 20 + 48 + 20
    s = world["shadow"]
    shadow = ShadowData(s.x_train[:48], s.y_train[:48], s.x_test, s.y_test)
    result = _online(epochs=5)(_oracle(world), world["x"], world["y"], shadow=shadow, max_total_queries=cap)
    assert result.extras["relabel_queries"] == result.setup_queries == 20 + 48 + 16
    assert result.extras["relabel_budget_hit"] is True and result.extras["relabel_epochs_run"] == 2
    assert len(result.extras["relabel_agreement_by_epoch"]) == 2
    # the candidates' queries were kept: none is cut by the budget
    assert not (result.status == Status.BUDGET_HIT).any() and int(result.queries.sum()) == 60
    assert int(result.queries.sum()) + result.setup_queries <= cap


def test_a_budget_that_cannot_pay_one_epoch_is_refused(world):
    with pytest.raises(
        BudgetExhaustedError,
        match=r"needs 72 setup queries \(held-out set 20 \+ one epoch 52\) besides the 60 kept for the candidates, "
        "but the total budget leaves 70",
    ):
        _online()(_oracle(world), world["x"], world["y"], shadow=world["shadow"], max_total_queries=60 + 70)


def test_the_kept_checkpoint_agrees_best_with_the_target(world):
    shadow = world["shadow"]
    oracle = BudgetedOracle(_oracle(world), QueryLedger(0))
    recipe = ShadowRecipe(arch="mlp", hidden=(32,), lr=1e-2, batch_size=16)
    model, log = OnlineRelabelling(recipe, 15, seed=3).train(oracle, shadow.x_train, shadow.x_test)
    # the model handed back is the kept checkpoint (here epoch 13 of 15: the agreement fell after it)
    kept = int((predict_logits(model, shadow.x_test).argmax(1).numpy() == log.holdout_labels).sum()) / 20
    assert kept == max(log.agreement_by_epoch) >= log.agreement_by_epoch[-1]
    assert log.agreement_by_epoch[log.best_epoch - 1] == kept and len(log.agreement_by_epoch) == 15
    assert kept > 0.5  # it learned the target's labels (10 classes: chance is 0.1)
    assert oracle.ledger.setup == 20 + 15 * 52


def test_online_relabelling_trains_with_the_target_s_defense(world, monkeypatch):
    decays: list[float] = []
    adam = torch.optim.Adam

    def recording(params, **kw):
        decays.append(kw.get("weight_decay", 0.0))
        return adam(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", recording)
    shadow, oracle = world["shadow"], BudgetedOracle(_oracle(world), QueryLedger(0))
    recipe = ShadowRecipe(arch="mlp", hidden=(32,), lr=1e-2, batch_size=16, defense="dropout=0.5+l2=0.01+hamp=0.9")
    model, log = OnlineRelabelling(recipe, 2, seed=3).train(oracle, shadow.x_train, shadow.x_test)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())
    assert decays == [0.01] and log.defense_left_out == []
    # HAMP's soft labels: the loss of a batch is the soft cross-entropy minus alpha times the prediction entropy
    logits, labels = torch.randn(6, 10), torch.arange(6)
    settings = TrainSettings(hamp=0.9, hamp_alpha=0.01)
    soft = hamp_soft_labels(labels, 10, 0.9)
    want = soft_cross_entropy(logits, soft) - 0.01 * prediction_entropy(logits)
    assert torch.allclose(batch_objective(model, logits, labels, settings, step=0), want)


def test_online_relabelling_says_which_parts_of_the_defense_it_cannot_apply(world, caplog):
    shadow, oracle = world["shadow"], BudgetedOracle(_oracle(world), QueryLedger(0))
    recipe = ShadowRecipe(arch="mlp", hidden=(32,), lr=1e-2, batch_size=16, defense="dp=8+l2=0.01")
    with caplog.at_level("WARNING"):
        _, log = OnlineRelabelling(recipe, 1, seed=3).train(oracle, shadow.x_train, shadow.x_test)
    assert log.defense_left_out == ["dp"]
    assert "cannot apply dp of the defense 'dp=8+l2=0.01'" in caplog.text


def test_online_relabelling_is_seeded(world):
    run = lambda seed: _online(seed=seed)(_oracle(world), world["x"], world["y"], shadow=world["shadow"])  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.extras["relabel_agreement_by_epoch"] == b.extras["relabel_agreement_by_epoch"]
    assert not np.array_equal(a.scores, c.scores)


def test_relabel_once_is_the_default_and_unchanged(world):
    shadow = world["shadow"]
    recipe = dict(RECIPE, epochs=5)
    default = create_attack("transfer", **recipe)(_oracle(world), world["x"], world["y"], shadow=shadow)
    once = create_attack("transfer", **recipe, relabel="once")(_oracle(world), world["x"], world["y"], shadow=shadow)
    np.testing.assert_array_equal(default.scores, once.scores)
    assert default.setup_queries == once.setup_queries == 52
    assert sorted(once.extras) == ["calibration", "shadow_label_agreement"]
    # the algorithm as it was: one label per shadow image, the recipe's training, the shadow model's -CE
    labels = _oracle(world).predict_labels(shadow.x_train)
    model = ShadowRecipe(**recipe).train(shadow.x_train, labels, input_shape=SHAPE, n_classes=10, seed=0)  # type: ignore[arg-type]
    ref = posterior_scores(predict_logits(model, world["x"]), torch.as_tensor(world["y"]), "loss")
    ok = once.status == Status.OK
    np.testing.assert_array_equal(once.scores[ok], ref[ok])


@pytest.mark.parametrize(
    "params,shape,message",
    [
        (dict(relabel="twice"), SHAPE, "relabel must be once or online, got 'twice'"),
        (dict(relabel="online", relabel_epochs=0), SHAPE, "relabel_epochs must be a positive integer, got 0"),
        (dict(relabel="online"), (64,), r"relabel=online augments images \(C, H, W\), got samples of shape \(64,\)"),
        (dict(relabel="online", batch_size=1), SHAPE, "relabel=online needs batches of at least 2, got batch_size 1"),
    ],
)
def test_bad_relabel_settings_are_refused(world, params, shape, message):
    s = world["shadow"]
    x, shadow = (
        world["x"].reshape(len(world["x"]), *shape),
        ShadowData(
            s.x_train.reshape(len(s.x_train), *shape), s.y_train, s.x_test.reshape(len(s.x_test), *shape), s.y_test
        ),
    )
    oracle = CallableOracle(lambda b: np.zeros(len(b), int), input_shape=shape, n_classes=10)
    with pytest.raises(InvalidInputError, match=message):
        create_attack("transfer", **{**RECIPE, "epochs": 1, **params})(oracle, x, world["y"], shadow=shadow)


def test_audit_settings_reach_the_transfer_attacks():
    cfg = {**AuditConfig(relabel="online", relabel_epochs=4).to_dict(), "adversary_arch": "mlp"}
    for name in ("transfer", "transfer-entropy", "transfer-confidence"):
        attack = create_attack(name, **audit_params(name, cfg))
        assert isinstance(attack, TransferAttack) and (attack.relabel, attack.relabel_epochs) == ("online", 4)
    assert AuditConfig(relabel="often", relabel_epochs=0).problems() == [
        "relabel: expected once or online, got 'often'",
        "relabel_epochs: expected a positive integer or nothing, got 0",
    ]


def test_estimate_counts_online_relabelling():
    cfg = AuditConfig(attacks=["transfer"], train_size=100, shadow_size=50, epochs=7)
    assert estimate(cfg)[0]["setup"] == 50
    assert estimate(cfg.replace(relabel="online"))[0]["setup"] == 7 * 50 + 50
    assert estimate(cfg.replace(relabel="online", relabel_epochs=3))[0]["setup"] == 3 * 50 + 50


def test_runs_saved_before_the_relabel_keys_keep_their_identity():
    new = AuditConfig().to_dict()
    old = {k: v for k, v in new.items() if k not in ("relabel", "relabel_epochs")}
    assert run_identity(old) == run_identity(new)
    assert run_identity(old) != run_identity(AuditConfig(relabel="online").to_dict())


def test_transfer_ablation_has_a_relabel_axis_that_keeps_the_once_runs_folders():
    plan = load_plan("transfer-ablation", scale="cpu")
    by_folder = {r.folder: r.config.relabel for r in plan.runs}
    assert by_folder["shadow_arch=cnn3_shadow_size=500/all"] == "once"  # as before the axis: cached runs stay valid
    assert by_folder["shadow_arch=cnn3_shadow_size=500/online"] == "online"
    assert len(plan.runs) == 2 * 5 * 3
    sizes = load_plan("sizes", scale="cpu", overrides={"relabel": "online", "attacks": "transfer"})
    assert {(r.group, tuple(r.config.attacks), r.config.relabel) for r in sizes.runs} == {
        ("wide", ("transfer",), "online")
    }


def test_cli_refuses_a_bad_relabel_value():
    result = CliRunner().invoke(app, ["reproduce", "transfer-ablation", "--set", "relabel=twice"])
    assert result.exit_code == 2
    assert "relabel: expected once or online, got 'twice'" in result.output


def test_rand_augment_stays_in_bounds_and_is_seeded():
    x = torch.rand(64, 3, 8, 8) * 2 - 1
    views = [rand_augment(x, torch.Generator().manual_seed(s), bounds=(-1.0, 1.0)) for s in (0, 0, 1)]
    assert views[0].shape == x.shape and float(views[0].min()) >= -1 and float(views[0].max()) <= 1
    assert torch.equal(views[0], views[1]) and not torch.equal(views[0], views[2])
    assert torch.equal(rand_augment(x, torch.Generator(), num_ops=0, bounds=(-1.0, 1.0)), x)


def test_rand_augment_operations_golden_values():
    u = torch.tensor([0.1, 0.5, 0.9, 1.0]).reshape(1, 1, 2, 2)
    plus, minus = torch.ones(1), -torch.ones(1)
    assert torch.allclose(RANDAUGMENT_OPS["brightness"](u, plus, 1.0), u * 1.9)
    assert torch.allclose(RANDAUGMENT_OPS["contrast"](u, minus, 1.0), 0.625 + 0.1 * (u - 0.625))
    assert torch.equal(RANDAUGMENT_OPS["solarize"](u, plus, 0.5), torch.where(u >= 0.5, 1 - u, u))
    four_bits = RANDAUGMENT_OPS["posterize"](u, plus, 1.0) * 255
    assert torch.allclose(four_bits, torch.tensor([16.0, 112.0, 224.0, 240.0]).reshape(1, 1, 2, 2))
    assert torch.allclose(RANDAUGMENT_OPS["autocontrast"](u, plus, 0.0), (u - 0.1) / 0.9)
    assert torch.equal(RANDAUGMENT_OPS["rotate"](u, plus, 0.0), u)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_ops=-1), "num_ops must be a non-negative integer, got -1"),
        (dict(magnitude=31), r"magnitude must be an integer in 0..30, got 31"),
    ],
)
def test_rand_augment_refuses_bad_settings(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        rand_augment(torch.rand(2, 1, 4, 4), torch.Generator(), **kwargs)
    with pytest.raises(InvalidInputError, match=r"expected images \(B, C, H, W\), got shape \(2, 16\)"):
        rand_augment(torch.rand(2, 16), torch.Generator())
