import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.models import ModelSpec, build_model
from labelleak.oracle import BudgetedOracle, CallableOracle, QueryLedger, SklearnOracle, TorchOracle
from labelleak.oracle.budget import even_allowance


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
    ledger = QueryLedger(3, max_per_sample=2, max_total=7)  # 7 // 3: each candidate may spend 2
    b = BudgetedOracle(linear_oracle, ledger)
    b.query(torch.zeros(2, 6), torch.tensor([0, 0]))
    assert ledger.remaining().tolist() == [0, 2, 2] and not ledger.lowered
    with pytest.raises(BudgetExhaustedError, match="per-sample budget 2"):
        b.query(torch.zeros(1, 6), torch.tensor([0]))
    b.query(torch.zeros(2, 6), torch.tensor([1, 2]))
    assert ledger.remaining().tolist() == [0, 1, 1]
    b.query(torch.zeros(2, 6), torch.tensor([1, 2]))
    assert ledger.total == 6 and linear_oracle.queries == 6  # the seventh query belongs to nobody
    with pytest.raises(BudgetExhaustedError, match="per-sample budget 2 would be exceeded for 1 sample"):
        b.query(torch.zeros(1, 6), torch.tensor([2]))


def test_a_total_cap_is_shared_evenly_whatever_the_order_of_the_rows():
    # the members come first in every audit: serving rows in file order starved the non-members (issue 29)
    ledger = QueryLedger(4, max_per_sample=10, max_total=25)
    assert even_allowance(25, 4, 10) == ledger.allowance() == 6 and ledger.lowered  # 25 // 4; one left over
    assert even_allowance(25, 4, 5) == 5 and even_allowance(3, 4) == 0 and even_allowance(9, 0, 4) == 4
    ledger.charge(torch.tensor([3] * 6))  # the last row spends its share first: the others keep theirs
    assert ledger.remaining().tolist() == [6, 6, 6, 0]
    assert ledger.affordable(6).tolist() == [True, True, True, False]
    assert ledger.affordable_counts(torch.arange(4), 5, reserve=1).tolist() == [5, 5, 5, 0]
    assert ledger.shared_room(torch.tensor([0, 1, 2])) == 6 and ledger.shared_room(torch.tensor([2, 3])) == 0
    assert not ledger.cut_short().any()  # row 3 was refused only what its per-sample budget 10 refuses too
    assert ledger.affordable(1, torch.tensor([3, 0])).tolist() == [False, True]
    assert ledger.cut_short().tolist() == [False, False, False, True]  # 7 <= 10: the total cap cut it short
    with pytest.raises(BudgetExhaustedError, match=r"per-candidate allowance 6 \(total budget 25 shared evenly\)"):
        ledger.charge(torch.tensor([3]))
    assert ledger.shared_room(torch.tensor([], dtype=torch.int64)) == 0


def test_setup_queries_come_out_of_the_total_before_the_allowance_is_fixed():
    ledger = QueryLedger(4, max_per_sample=100, max_total=50)
    assert ledger.setup_room(reserve=4) == 46
    ledger.charge_setup(10)
    assert ledger.allowance() == 10  # (50 - 10) // 4
    ledger.charge(torch.tensor([0]))  # the first candidate query fixes it
    ledger.charge_setup(6)  # later setup queries fit within the remainder or fail; the allowance stays
    assert ledger.allowance() == 10 and ledger.remaining().tolist() == [9, 10, 10, 10]
    unbounded = QueryLedger(2, max_per_sample=7)
    assert unbounded.allowance() == 7 and not unbounded.lowered and not unbounded.cut_short().any()
    assert QueryLedger(2).allowance() is None


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
