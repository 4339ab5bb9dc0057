"""Every defense by name: what it changes, its value when given bare, and the strengths a sweep tries.

One entry per name of the specification language (``l2=5e-4+augment``, see :func:`labelleak.defenses.plan.
parse_defense`). A training-time entry names the :class:`labelleak.models.TrainSettings` field (or the
:class:`labelleak.models.ModelSpec` field) it sets and that the training loop reads; an output-time entry carries
its transform (:mod:`labelleak.defenses.output`); a label-time entry (``label``) changes which label the target
answers (:mod:`labelleak.oracle.smoothed`, wrapped around the target's forward pass). The order is the order of a
sweep and of the error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from labelleak.defenses.output import memguard, round_decimals, top1, whole_decimals
from labelleak.defenses.training import AUGMENT_POLICIES

Sets = Literal["train", "spec", "output", "label", "public"]
Strength = float | int | None
Transform = Callable[[torch.Tensor, float, int], torch.Tensor]  # (probabilities, strength, seed) -> defended ones


@dataclass(frozen=True)
class Defense:
    """One registered defense.

    ``sets``: a training setting (``train``), the model spec (``spec``), the served outputs (``output``), the
    served labels (``label``: query-time randomisation) or the public pre-training before the target's own
    (``public``: not a defense by itself); ``key``: the field it sets (an output defense's kind). ``grid``: a
    sweep's strengths, weakest first (``()``: not swept; ``(None,)``: swept without a strength). ``choices``: the
    words a word-valued defense takes. ``check``: the problem with a strength (an output one's, or a training-time
    one's when parsed), or ``None``.
    """

    name: str
    sets: Sets
    key: str
    default: float | int | str
    grid: tuple[Strength, ...] = ()
    choices: tuple[str, ...] = ()
    transform: Transform | None = None
    check: Callable[[float], str | None] | None = None


def entropy_threshold(gamma: float) -> str | None:
    """The problem with HAMP's strength, or ``None``: an entropy threshold, a fraction of log(C) below 1."""
    return None if 0 <= gamma < 1 else f"expected an entropy threshold gamma in [0, 1), got {gamma:g}"


def sub_models(count: float) -> str | None:
    """The problem with SELENA's K (or L), or ``None``: a whole number of sub-models, at least 1."""
    return None if count >= 1 and count == int(count) else f"expected a whole number of sub-models, got {count:g}"


DEFENSES: tuple[Defense, ...] = (
    Defense("l2", "train", "weight_decay", 5e-4, grid=(1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2)),
    Defense("l1", "train", "l1", 1e-5, grid=(1e-6, 1e-5, 1e-4, 1e-3)),
    Defense("dropout", "spec", "dropout", 0.5, grid=(0.1, 0.25, 0.5, 0.75)),
    Defense("label-smoothing", "train", "label_smoothing", 0.1, grid=(0.05, 0.1, 0.2, 0.4)),
    Defense("augment", "train", "augment", "auto", choices=AUGMENT_POLICIES),
    # patience in epochs: less patience, stronger defense
    Defense("early-stopping", "train", "early_stopping", 5, grid=(10, 5, 2, 1)),
    Defense("relaxloss", "train", "relaxloss", 0.5, grid=(0.25, 0.5, 1.0, 1.5)),
    Defense("advreg", "train", "advreg", 1.0, grid=(0.1, 0.3, 1.0, 3.0)),
    # epsilon: smaller is stronger; "no DP" is a sweep's "none" point
    Defense("dp", "train", "dp_epsilon", 8.0, grid=(32, 16, 8, 4, 2, 1)),
    Defense("dp-noise", "train", "dp_noise_multiplier", 1.0),
    Defense("dp-clip", "train", "dp_max_grad_norm", 1.0),
    # DP-SGD's learning rate as given (the adaptive adversary's models take the target's tuned one)
    Defense("dp-lr", "train", "lr", 1e-3),
    # where DP-SGD's tuning reads data: outside the training set, or (flagged, epsilon withheld) the private data
    Defense("dp-tune", "train", "dp_tune", "outside", choices=("outside", "private", "off")),
    Defense("memguard", "output", "memguard", 1.0, grid=(0.5, 1.0, 2.0), transform=memguard),
    Defense("top1", "output", "top1", 0.0, grid=(None,), transform=top1),
    # decimals kept: fewer is stronger
    Defense("round", "output", "round", 2.0, grid=(3, 2, 1), transform=round_decimals, check=whole_decimals),
    # label-only defenses. HAMP's entropy threshold gamma: higher is stronger (soft labels closer to uniform)
    Defense("hamp", "train", "hamp", 0.9, grid=(0.5, 0.7, 0.9, 0.95), check=entropy_threshold),
    # SELENA's K sub-models (each sample left out of L = round(0.4 K) unless selena-l says); K + 1 models to train
    Defense("selena", "train", "selena_k", 4, grid=(2, 4, 8), check=sub_models),
    Defense("selena-l", "train", "selena_l", 2, check=sub_models),
    # query-time label randomisation: the noise scale sigma, larger is stronger
    Defense("label-noise", "label", "label_noise", 0.1, grid=(0.02, 0.05, 0.1, 0.25)),
    # pre-train on this many public samples first (the pool outside the four parts)
    Defense("public", "public", "public", 10000),
)
BY_NAME = {d.name: d for d in DEFENSES}
DEFENSE_NAMES = ("none", *BY_NAME)
OUTPUT_KINDS = ("none", *(d.key for d in DEFENSES if d.sets == "output"))
