import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.models import ModelSpec, build_model
from labelleak.oracle import BudgetedOracle, CallableOracle, QueryLedger, SklearnOracle, TorchOracle


def test_counts_samples_not_calls_and_batches(linear_model):
    calls = []

    def fn(x):
        calls.append(len(x))
        return linear_model(x)

    oracle = CallableOracle(fn, input_shape=(6,), n_classes=3, bounds=(-10, 10), batch_size=4)
    out = oracle.predict_labels(np.zeros((10, 6), np.float32))
    assert out.dtype == np.int64 and out.shape == (10,)
    assert oracle.queries == 10 and calls == [4, 4, 2]
    oracle.predict_labels(torch.zeros(3, 6))
    assert oracle.queries == 13


@pytest.mark.parametrize(
    "x,match",
    [
        (np.zeros((2, 5)), r"expected shape \(N, 6\), got \(2, 5\)"),
        (np.full((2, 6), np.nan), "NaN"),
        (np.full((2, 6), 11.0), r"values must lie in \[-10.0, 10.0\]"),
        (np.array([["a"] * 6]), "expected a numeric array"),
    ],
)
def test_bad_inputs_are_named(linear_oracle, x, match):
    with pytest.raises(InvalidInputError, match=match):
        linear_oracle.predict_labels(x)
    assert linear_oracle.queries == 0


def test_lifetime_budget(linear_model):
    oracle = CallableOracle(linear_model, input_shape=(6,), n_classes=3, bounds=(-10, 10), max_queries=5)
    oracle.predict_labels(np.zeros((5, 6)))
    with pytest.raises(BudgetExhaustedError, match="would exceed max_queries=5"):
        oracle.predict_labels(np.zeros((1, 6)))
    assert oracle.queries == 5


def test_unknown_class_from_backend():
    oracle = CallableOracle(lambda x: np.full(len(x), 7), input_shape=(2,), n_classes=3)
    with pytest.raises(InvalidInputError, match="unknown class"):
        oracle.predict_labels(np.zeros((1, 2)))


def test_sklearn_oracle_matches_estimator(blobs):
    x, y = blobs
    est = LogisticRegression(max_iter=500).fit(x, y)
    oracle = SklearnOracle(est, input_shape=(6,))
    assert oracle.n_classes == 3
    np.testing.assert_array_equal(oracle.predict_labels(x), est.predict(x))
    with pytest.raises(InvalidInputError, match="not fitted"):
        SklearnOracle(LogisticRegression(), input_shape=(6,))


def test_torch_oracle_warns_about_train_mode():
    model = build_model(ModelSpec("mlp", (4,), 3)).train()
    with pytest.warns(UserWarning, match="train mode"):
        oracle = TorchOracle(model, input_shape=(4,), n_classes=3)
    assert not model.training
    x = torch.rand(5, 4)
    assert torch.equal(oracle.predict_labels(x), model(x).argmax(1))


def test_ledger_per_sample_and_total_budgets(linear_oracle):
    ledger = QueryLedger(3, max_per_sample=2, max_total=5)
    b = BudgetedOracle(linear_oracle, ledger)
    b.query(torch.zeros(2, 6), torch.tensor([0, 0]))
    assert ledger.remaining().tolist() == [0, 2, 2]
    with pytest.raises(BudgetExhaustedError, match="per-sample budget 2"):
        b.query(torch.zeros(1, 6), torch.tensor([0]))
    b.query(torch.zeros(2, 6), torch.tensor([1, 2]))
    assert ledger.remaining().tolist() == [0, 1, 1]
    with pytest.raises(BudgetExhaustedError, match="total budget 5"):
        b.query(torch.zeros(2, 6), torch.tensor([1, 2]))
    assert ledger.total == 4 and linear_oracle.queries == 4


def test_ledger_plans_what_candidates_can_still_afford():
    ledger = QueryLedger(4, max_per_sample=10, max_total=25)
    ledger.used = torch.tensor([0, 4, 9, 10])  # 23 spent: only 2 left in total
    assert ledger.remaining(torch.tensor([1, 3])).tolist() == [2, 0]
    # per-sample room [10, 6, 1, 0], total room 2: the first affordable rows win
    assert ledger.affordable(1).tolist() == [True, True, False, False]
    assert ledger.affordable(2).tolist() == [True, False, False, False]
    assert ledger.affordable(0, torch.tensor([3])).tolist() == [True]
    ledger.used = torch.tensor([0, 4, 9, 0])  # 13 spent, 12 left in total
    # wanted 5 with 1 kept back per row: per-sample [5, 5, 0, 5]; total 12 - 4 reserved = 8, earlier rows first
    assert ledger.affordable_counts(torch.arange(4), 5, reserve=1).tolist() == [5, 3, 0, 0]
    assert ledger.shared_room(torch.tensor([0, 1, 3])) == 4  # 12 // 3, under every per-sample room
    assert ledger.shared_room(torch.tensor([1, 2])) == 1  # candidate 2 has 1 left
    assert ledger.shared_room(torch.tensor([], dtype=torch.int64)) == 0


class _ProbaOracle(CallableOracle):
    """A user's own score oracle: a label oracle with ``predict_proba``, no labelleak base class needed for it."""

    def predict_proba(self, x):
        p = torch.zeros(len(x), self.n_classes, dtype=torch.float64)
        p[torch.arange(len(x)), torch.as_tensor(self.predict_labels(np.asarray(x)))] = 1.0
        return p


def test_score_oracle_protocol_decides_who_may_serve_scores(linear_model):
    from labelleak.oracle import ScoreOracle, require_scores

    labels_only = CallableOracle(linear_model, input_shape=(6,), n_classes=3, bounds=(-10, 10))
    scores = _ProbaOracle(linear_model, input_shape=(6,), n_classes=3, bounds=(-10, 10))
    assert isinstance(scores, ScoreOracle) and not isinstance(labels_only, ScoreOracle)
    require_scores(scores, "score-loss")
    with pytest.raises(InvalidInputError, match="score-loss: needs an oracle that returns scores"):
        require_scores(labels_only, "score-loss")
    x = torch.zeros(2, 6)
    p = BudgetedOracle(scores, QueryLedger(2)).query_proba(x, torch.arange(2))
    assert p.shape == (2, 3) and torch.equal(p.argmax(1), torch.as_tensor(linear_model(x.numpy())))
    ledger = QueryLedger(2)
    with pytest.raises(InvalidInputError, match="CallableOracle returns labels only"):
        BudgetedOracle(labels_only, ledger).query_proba(x, torch.arange(2))
    assert ledger.total == 0


@pytest.mark.parametrize("arch,shape", [("cnn7", (3, 32, 32)), ("mlp", (64,))])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_samples_logits_do_not_depend_on_its_batch(arch, shape, threads):
    """Unpadded, chunks of under 12 rows take another kernel path (measured: 6th-digit differences)."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch=arch, input_shape=shape, n_classes=10, width=0.25))
    oracle = TorchOracle(model.eval(), input_shape=shape, n_classes=10, batch_size=256)
    x = torch.rand(64, *shape, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        together = oracle.logits(x)
        alone = torch.cat([oracle.logits(x[i : i + k]) for i, k in ((0, 1), (1, 2), (3, 3), (6, 5), (11, 9))])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(alone, together[:20])
