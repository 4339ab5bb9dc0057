"""A model served as a defended target serves it: one place that turns a defense's output-time part into oracles,
for the target and, in the adaptive evaluation, for every model of the adversary's that answers like it."""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from labelleak.defenses import DefensePlan
from labelleak.oracle.backends import TorchOracle
from labelleak.oracle.base import LabelOracle
from labelleak.oracle.hamp import HampScoreOracle
from labelleak.oracle.scores import DefendedScoreOracle
from labelleak.oracle.smoothed import smooth_labels


class Served(NamedTuple):
    """What a defended model answers: its labels and its scores (the same oracle under label randomisation)."""

    labels: LabelOracle
    scores: LabelOracle  # with predict_proba: a ScoreOracle too


def serve(
    model: nn.Module,
    plan: DefensePlan,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    seed: int,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Served:
    """``model`` behind ``plan``'s output defenses, their randomness keyed by ``seed``: label randomisation answers
    labels and (vote-share) scores; a HAMP-trained model's scores are HAMP's output modification unless another
    output defense is named; the other output defenses act on its probabilities."""
    plain = TorchOracle(model, input_shape=input_shape, n_classes=n_classes, bounds=bounds)
    if plan.label_noise:
        smoothed = smooth_labels(plain, plan.label_noise, seed=seed)
        return Served(smoothed, smoothed)
    if "hamp" in plan.train and plan.output.kind == "none":
        hamp = HampScoreOracle(model, input_shape=input_shape, n_classes=n_classes, bounds=bounds, seed=seed)
        return Served(plain, hamp)
    scores = DefendedScoreOracle(
        model, defense=plan.output, input_shape=input_shape, n_classes=n_classes, bounds=bounds
    )
    return Served(plain, scores)
