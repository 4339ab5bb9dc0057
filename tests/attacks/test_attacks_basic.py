import numpy as np
import pytest

from labelleak.attacks import ShadowData, Status, create_attack
from labelleak.attacks.gap import GapAttack
from labelleak.errors import InvalidInputError, UnknownNameError
from labelleak.metrics import auc
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model
from labelleak.oracle import CallableOracle, TorchOracle


def test_gap_scores_and_counts_exactly(linear_model, linear_oracle):
    x = np.random.default_rng(0).uniform(-1, 1, (20, 6)).astype(np.float32)
    y = linear_model(x)
    y[:5] = (y[:5] + 1) % 3
    res = GapAttack()(linear_oracle, x, y)
    assert res.scores.tolist() == [0.0] * 5 + [1.0] * 15
    assert (res.status[:5] == Status.MISCLASSIFIED).all() and (res.status[5:] == Status.OK).all()
    assert res.queries.tolist() == [1] * 20 and linear_oracle.queries == 20


def test_gap_under_total_budget_reports_budget_hit(linear_model, linear_oracle):
    x = np.zeros((6, 6), np.float32)
    # 4 queries for 6 candidates: less than one each, and serving the first four would favour the members
    res = GapAttack()(linear_oracle, x, linear_model(x), max_total_queries=4)
    assert res.queries.sum() == 0 and linear_oracle.queries == 0 and res.allowance == 0 and res.cut_short == 6
    assert (res.status == Status.BUDGET_HIT).all() and res.scores.tolist() == [0.0] * 6
    res = GapAttack()(linear_oracle, x, linear_model(x), max_total_queries=11)
    assert res.queries.tolist() == [1] * 6 and res.allowance == 1 and res.cut_short == 0
    assert (res.status == Status.OK).all()


def test_attack_input_validation(linear_oracle):
    gap = GapAttack()
    with pytest.raises(InvalidInputError, match=r"x must have shape \(N, 6\)"):
        gap(linear_oracle, np.zeros((3, 5)), np.zeros(3, int))
    with pytest.raises(InvalidInputError, match="out of range for 3 classes"):
        gap(linear_oracle, np.zeros((3, 6)), np.array([0, 1, 3]))
    with pytest.raises(InvalidInputError, match="expected 3 labels"):
        gap(linear_oracle, np.zeros((3, 6)), np.array([0, 1]))
    with pytest.raises(InvalidInputError, match="NaN"):
        gap(linear_oracle, np.full((3, 6), np.nan), np.zeros(3, int))
    with pytest.raises(InvalidInputError, match="needs shadow data"):
        create_attack("transfer")(linear_oracle, np.zeros((3, 6)), np.zeros(3, int))


def test_registry_unknown_name_lists_choices():
    with pytest.raises(UnknownNameError, match="unknown attack 'nope'; choose from .*gap.*transfer"):
        create_attack("nope")
    with pytest.raises(InvalidInputError, match="bad parameters"):
        create_attack("gap", colour="red")


def _overfit_target(x, y, epochs):
    spec = ModelSpec("mlp", (6,), 3, hidden=(128, 128))
    model = init_model(lambda: build_model(spec), 0)
    return train_model(model, x, y, TrainSettings(epochs=epochs, batch_size=16, lr=3e-3), n_classes=3, progress=False)


def _noisy_blobs(n, seed):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.3] * 6, [0.5] * 6, [0.7] * 6])
    y = rng.integers(0, 3, n)
    x = np.clip(centers[y] + rng.normal(scale=0.15, size=(n, 6)), 0, 1).astype(np.float32)
    return x, y


def test_transfer_attack_scores_follow_the_shadow_model_and_are_seeded():
    # When the adversary's shadow data overlaps the members, the shadow model fits them as the target does and
    # the transfer score must separate them from non-members; misclassified candidates always rank lowest.
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (300, 6)).astype(np.float32), rng.integers(0, 3, 300)  # labels are pure noise
    members, _nonmembers, sh_test = slice(0, 100), slice(100, 200), slice(200, 300)
    target = _overfit_target(x[members], y[members], epochs=150)
    oracle = TorchOracle(target, input_shape=(6,), n_classes=3)
    shadow = ShadowData(x[members], y[members], x[sh_test], y[sh_test])
    cand_x, cand_y = x[:200], y[:200]
    is_member = np.r_[np.ones(100), np.zeros(100)]
    attack = create_attack("transfer", arch="mlp", hidden=(128, 128), epochs=150, lr=3e-3, batch_size=16, seed=1)
    res = attack(oracle, cand_x, cand_y, shadow=shadow)
    assert res.setup_queries == 100 and res.queries.tolist() == [1] * 200
    assert auc(is_member, res.scores) > 0.8
    wrong = res.status == Status.MISCLASSIFIED
    assert wrong.any() and res.scores[wrong].max() < res.scores[~wrong].min()
    again = attack(oracle, cand_x, cand_y, shadow=shadow)
    np.testing.assert_array_equal(res.scores, again.scores)
    cal = res.extras["calibration"]
    assert len(cal["member_scores"]) == 100 and len(cal["nonmember_scores"]) == 100


@pytest.mark.parametrize("name", ["transfer-entropy", "transfer-confidence"])
def test_transfer_variants_score_ranges(name, linear_model):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (40, 6)).astype(np.float32)
    oracle = CallableOracle(linear_model, input_shape=(6,), n_classes=3)
    shadow = ShadowData(x[:20], linear_model(x[:20]), x[20:], linear_model(x[20:]))
    res = create_attack(name, epochs=3, hidden=(8,))(oracle, x, linear_model(x), shadow=shadow)
    if name == "transfer-confidence":
        assert ((res.scores > 1 / 3 - 1e-9) & (res.scores <= 1)).all()
    else:
        assert ((res.scores <= 0) & (res.scores >= -np.log(3) - 1e-9)).all()
