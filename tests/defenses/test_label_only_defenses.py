"""HAMP, SELENA and query-time label randomisation: their mechanics on tiny data, their parsing, a defend run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.defenses import parse_defense
from labelleak.defenses.training import hamp_confidence, hamp_soft_labels
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, predict_logits
from labelleak.models import selena as selena_mod
from labelleak.models.selena import SplitAI, selena_split, train_selena
from labelleak.models.training import default_device, train_with_report
from labelleak.oracle.hamp import HampScoreOracle, rearrange_like
from labelleak.oracle.smoothed import SmoothedLabelOracle


def _blobs(n=120, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, (classes, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    x = np.clip(centres[y] + rng.normal(0, 0.08, (n, d)), 0, 1).astype(np.float32)
    return x, y.astype(np.int64)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(1)


# --- HAMP ---


@pytest.mark.parametrize("classes", [2, 10, 100])
@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9, 0.99])
def test_hamp_soft_labels_have_the_entropy_the_threshold_asks(gamma, classes):
    y = torch.arange(50) % classes
    soft = hamp_soft_labels(y, classes, gamma)
    assert torch.allclose(soft.sum(1), torch.ones(50), atol=1e-6)
    assert torch.equal(soft.argmax(1), y)  # the true class stays the most likely one
    assert torch.allclose(
        _entropy(soft.double()), torch.full((50,), gamma * math.log(classes), dtype=torch.float64), atol=1e-5
    )
    # a higher threshold is a less confident label
    assert hamp_confidence(gamma, classes) < hamp_confidence(gamma / 2, classes)


def test_hamp_trains_less_confident_predictions_than_plain_training():
    x, y = _blobs()
    spec = ModelSpec("mlp", (6,), 3, hidden=(32,))

    def top_confidence(settings: TrainSettings) -> float:
        model, _ = train_with_report(
            init_model(lambda: build_model(spec), 0), x, y, settings, n_classes=3, progress=False
        )
        return float(torch.softmax(predict_logits(model, x), 1).max(1).values.mean())

    base = dict(epochs=25, lr=2e-2, batch_size=32)
    plain, hamp = top_confidence(TrainSettings(**base)), top_confidence(TrainSettings(**base, hamp=0.9))
    p = hamp_confidence(0.9, 3)
    assert plain > 0.95 and hamp < p + 0.1 < plain  # capped near the soft label's confidence


def test_hamp_and_selena_change_the_cache_key_only_when_on():
    plain = TrainSettings().to_dict()
    assert not {"hamp", "hamp_alpha", "selena_k", "selena_l"} & set(plain)
    assert TrainSettings(hamp=0.9).to_dict()["hamp"] == 0.9
    assert TrainSettings(selena_k=5).to_dict()["selena_l"] == 2  # round(0.4 * 5), the resolved L is keyed


def test_hamp_output_modification_answers_with_a_random_samples_scores_in_the_querys_order():
    p = torch.softmax(torch.randn(200, 5, generator=torch.Generator().manual_seed(0)) * 3, 1).double()
    q = torch.softmax(torch.randn(200, 5, generator=torch.Generator().manual_seed(1)), 1).double()
    out = rearrange_like(p, q)
    assert torch.allclose(out.sort(1).values, q.sort(1).values)  # q's values, ...
    assert torch.equal(out.argsort(1), p.argsort(1))  # ... in p's order: every label kept
    x, y = _blobs(n=64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 3)).eval()
    oracle = HampScoreOracle(model, input_shape=(6,), n_classes=3, seed=2)
    scores = oracle.predict_proba(x)
    assert torch.equal(scores.argmax(1), predict_logits(model, x).argmax(1))
    order = np.random.default_rng(0).permutation(64)
    assert torch.allclose(oracle.predict_proba(x[order]), scores[order])  # the same query, the same answer
    assert oracle.queries == 128  # the random samples' forward passes are not the adversary's queries
    assert not torch.allclose(scores, torch.softmax(predict_logits(model, x).double(), 1), atol=1e-3)


# --- SELENA ---


@pytest.mark.parametrize(("k", "left_out"), [(2, 1), (5, 2), (6, 5)])
def test_selena_split_leaves_each_sample_out_of_exactly_l_sub_models(k, left_out):
    excluded = selena_split(400, k, left_out, seed=3)
    assert excluded.shape == (400, k) and torch.equal(excluded.sum(1), torch.full((400,), left_out))
    assert torch.equal(excluded, selena_split(400, k, left_out, seed=3))
    share = excluded.float().mean(0)  # every sub-model leaves out about L/K of the samples
    assert torch.allclose(share, torch.full((k,), left_out / k), atol=0.08)


class _Constant(nn.Module):
    """A sub-model whose logits are the same vector for every input."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def test_split_ai_averages_a_training_sample_over_the_sub_models_that_never_saw_it():
    x, _ = _blobs(n=30)
    logits = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 0.0]]
    models = [_Constant(v) for v in logits]
    excluded = selena_split(30, 4, 2, seed=0)
    split = SplitAI(models, torch.as_tensor(x), excluded)
    probs = torch.softmax(torch.tensor(logits), 1)  # (K, C)
    expect = torch.stack([probs[excluded[i]].mean(0) for i in range(30)])
    assert torch.allclose(split.predict_proba(x), expect, atol=1e-6)
    # any other input: all sub-models; a training row found in a shuffled batch still gets its own sub-models
    outside = np.clip(x[:5] + 0.01, 0, 1)
    assert torch.allclose(split.predict_proba(outside), probs.mean(0).expand(5, -1), atol=1e-6)
    order = np.random.default_rng(1).permutation(30)
    assert torch.allclose(split.predict_proba(x[order]), expect[order], atol=1e-6)


def test_selena_trains_each_sub_model_on_its_part_and_the_final_model_on_split_ai_soft_labels(monkeypatch):
    x, y = _blobs(n=80)
    calls: list[dict] = []
    real_train = selena_mod._train

    def spy(model, xs, ys, settings, *args, soft_targets=None, **kwargs):
        calls.append({"x": xs.copy(), "settings": settings, "soft": soft_targets})
        return real_train(model, xs, ys, settings, *args, soft_targets=soft_targets, **kwargs)

    monkeypatch.setattr(selena_mod, "_train", spy)
    settings = TrainSettings(epochs=5, batch_size=16, seed=4, selena_k=3, selena_l=1)
    spec = ModelSpec("mlp", (6,), 3, hidden=(16,))
    final, report = train_selena(
        init_model(lambda: build_model(spec), 0), x, y, settings, 3, default_device(), progress=False
    )
    excluded = selena_split(80, 3, 1, seed=4)
    assert len(calls) == 4 and report.trained_rows == 80
    for j in range(3):
        assert np.array_equal(calls[j]["x"], x[~excluded[:, j].numpy()]) and calls[j]["soft"] is None
        assert calls[j]["settings"].selena_k == 0 and calls[j]["settings"].seed == 4 + 1 + j
    # the final model learns from the Split-AI's answers on the training set, not from the labels
    assert np.array_equal(calls[3]["x"], x)
    monkeypatch.setattr(selena_mod, "_train", real_train)
    split = selena_mod.train_split_ai(
        init_model(lambda: build_model(spec), 0), x, y, settings, 3, default_device(), progress=False
    )
    assert torch.allclose(calls[3]["soft"], split.predict_proba(x), atol=1e-5)
    assert not torch.equal(calls[3]["soft"], torch.nn.functional.one_hot(torch.as_tensor(y), 3).float())


def test_selena_is_what_training_runs_when_its_setting_is_on():
    x, y = _blobs(n=60)
    spec = ModelSpec("mlp", (6,), 3, hidden=(16,))
    settings = TrainSettings(epochs=4, batch_size=16, selena_k=2)
    a, _ = train_with_report(init_model(lambda: build_model(spec), 0), x, y, settings, n_classes=3, progress=False)
    b, _ = train_selena(init_model(lambda: build_model(spec), 0), x, y, settings, 3, default_device(), progress=False)
    assert torch.equal(predict_logits(a, x), predict_logits(b, x))


# --- query-time label randomisation ---


def _linear_oracle(sigma: float, seed: int = 0) -> tuple[SmoothedLabelOracle, nn.Linear, list[int]]:
    torch.manual_seed(0)
    lin = nn.Linear(6, 3)
    rows: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        rows.append(len(x))
        with torch.no_grad():
            return lin(x)

    return SmoothedLabelOracle(forward, sigma=sigma, input_shape=(6,), n_classes=3, seed=seed), lin, rows


def test_randomised_labels_agree_less_with_the_clean_label_as_the_noise_grows():
    x = torch.as_tensor(_blobs(n=400)[0])
    agreement = []
    for sigma in (0.0, 0.05, 0.3, 3.0):
        oracle, lin, _ = _linear_oracle(sigma)
        clean = lin(x).argmax(1)
        agreement.append(float((oracle.predict_labels(x) == clean).float().mean()))
    assert agreement[0] == 1.0
    assert agreement == sorted(agreement, reverse=True) and agreement[-1] < 0.8 < agreement[1]


def test_the_same_query_gets_the_same_answer_whatever_its_batch_and_internal_queries_are_not_counted():
    x = torch.as_tensor(_blobs(n=200)[0])
    oracle, _, rows = _linear_oracle(0.5, seed=7)
    first = oracle.predict_labels(x)
    order = torch.randperm(200, generator=torch.Generator().manual_seed(2))
    assert torch.equal(oracle.predict_labels(x[order]), first[order])
    assert torch.equal(oracle.predict_labels(x[:10]), first[:10])
    assert oracle.queries == 410 and sum(rows) == 410 * oracle.copies  # the copies are the defense's own work
    other, _, _ = _linear_oracle(0.5, seed=8)
    assert not torch.equal(other.predict_labels(x), first)  # the noise is keyed, not fixed
    shares = oracle.predict_proba(x)
    assert torch.allclose(shares.sum(1), torch.ones(200, dtype=torch.float64))
    assert torch.equal(shares.argmax(1), first)


# --- parsing and a defend run ---


def test_the_new_defenses_parse_with_their_strengths_and_refuse_bad_ones():
    assert parse_defense("hamp=0.8").train == {"hamp": 0.8}
    assert parse_defense("selena=5+selena-l=3").train == {"selena_k": 5, "selena_l": 3}
    assert parse_defense("label-noise=0.2").label_noise == 0.2 and parse_defense("label-noise").label_noise == 0.1
    assert parse_defense("label-noise+round=2").output.kind == "round"  # labels and scores are defended apart
    with pytest.raises(InvalidInputError, match=r"defense 'hamp': expected an entropy threshold gamma in \[0, 1\)"):
        parse_defense("hamp=1.5")
    with pytest.raises(InvalidInputError, match="defense 'selena': expected a whole number of sub-models, got 0"):
        parse_defense("selena=0")
    with pytest.raises(InvalidInputError, match="non-negative noise scale"):
        parse_defense("label-noise=-1")
    with pytest.raises(InvalidInputError, match="1 <= L < K"):
        TrainSettings(selena_k=3, selena_l=3).check()


def test_defend_runs_each_new_defense(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "defend", "--defenses", "none,hamp=0.9,selena=2,label-noise=0.3", "--attacks", "gap",
            "--train-size", "40", "--epochs", "4", "--quiet",
            "--out", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "c"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["defense"]: r for r in json.loads((tmp_path / "d" / "matrix.json").read_text())["rows"]}
    assert set(rows) == {"none", "hamp=0.9", "selena=2", "label-noise=0.3"}
    for row in rows.values():
        assert 0 <= row["gap.auc"] <= 1
    # label randomisation defends the answers, not the model: the same trained target as "none", and the matrix
    # reports the accuracy of what it answers (the votes), which is its utility
    noisy, plain = (
        json.loads((tmp_path / "d" / d / "results.json").read_text())["target"] for d in ("label-noise=0.3", "none")
    )
    assert noisy["train_accuracy"] == plain["train_accuracy"] and "served_test_accuracy" not in plain
    assert rows["label-noise=0.3"]["test_accuracy"] == noisy["served_test_accuracy"]
    assert rows["label-noise=0.3"]["train_accuracy"] == noisy["served_train_accuracy"]
    assert rows["none"]["test_accuracy"] == plain["test_accuracy"]
