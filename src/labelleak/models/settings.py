"""Training settings and what training reports: plain data shared by plain and DP-SGD training.

They live apart from the training loops so that :mod:`labelleak.models.private` (DP-SGD) and
:mod:`labelleak.models.training` can both use them without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from labelleak.errors import InvalidInputError

LR_SCHEDULES = ("constant", "cosine")
DP_TUNING = ("outside", "private", "off")  # where DP-SGD's tuning runs read their data (models/private.py)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings and training-time defenses; all part of the key under which a model is cached."""

    epochs: int = 30
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": the rate decays to 0 over the epochs (a stable final model)
    batch_size: int = 128
    weight_decay: float = 0.0  # L2 regularisation
    seed: int = 0
    l1: float = 0.0
    label_smoothing: float = 0.0
    augment: str = "none"  # auto, flips-crops, shifts or none (defenses/training.py: augment_policy); True = auto
    early_stopping: int | None = None  # patience in epochs, on a validation split of val_fraction
    val_fraction: float = 0.1  # also the reference set of adversarial regularisation
    dp_epsilon: float | None = None  # DP-SGD with a target epsilon ...
    dp_noise_multiplier: float | None = None  # ... or a fixed noise multiplier
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0
    advreg: float = 0.0  # strength of adversarial regularisation
    relaxloss: float | None = None  # RelaxLoss target loss level alpha
    # --- label-only defenses (issue 33); keys of the cache only when on ---
    hamp: float | None = None  # HAMP's entropy threshold gamma in [0, 1): soft labels of entropy gamma * log(C)
    hamp_alpha: float = 0.01  # weight of HAMP's entropy regulariser (the loss minus alpha * prediction entropy)
    selena_k: int = 0  # SELENA: K sub-models of Split-AI, then self-distillation; 0: off
    selena_l: int | None = None  # sub-models that exclude each training sample; None: round(0.4 K) (paper 10 of 25)
    # --- DP-SGD recipe (models/private.py); keys of the cache only when DP is on ---
    dp_batch_size: int = 256  # expected logical batch of Poisson sampling; physical batches are smaller
    # clipping norm and lr by short tuning runs (models/private.py): "outside" (on rows outside the training set,
    # given as validation data), "private" (on the training set itself: its epsilon excludes the tuning), "off"
    dp_tune: str = "outside"
    # --- end of the DP-SGD recipe ---
    init: str | None = None  # cache key of the model training starts from (public pre-training); key only when set

    def __post_init__(self) -> None:
        if isinstance(self.augment, bool):  # the former switch: on means the policy that suits the data
            object.__setattr__(self, "augment", "auto" if self.augment else "none")
        if isinstance(self.dp_tune, bool):  # the former switch: off, or on (now on rows outside the training set)
            object.__setattr__(self, "dp_tune", "outside" if self.dp_tune else "off")

    def to_dict(self) -> dict[str, Any]:
        """The settings as the model cache keys them: fields added later appear only where they matter, so
        models cached before them keep their keys."""
        d = asdict(self)
        if d["augment"] == "none":
            d["augment"] = False
        if self.init is None:
            del d["init"]
        if self.hamp is None:
            del d["hamp"], d["hamp_alpha"]
        if not self.selena_k:
            del d["selena_k"], d["selena_l"]
        else:
            d["selena_l"] = self.selena_excluded()
        if not self.uses_dp():
            del d["dp_batch_size"], d["dp_tune"]
        else:
            d["dp_recipe"] = 3  # Poisson sampling, virtual steps, tuning off the training set, epochs by budget
        return d

    def uses_dp(self) -> bool:
        return self.dp_epsilon is not None or self.dp_noise_multiplier is not None

    def selena_excluded(self) -> int:
        """L of SELENA: how many of the K sub-models never see a given training sample."""
        if self.selena_l is not None:
            return self.selena_l
        return min(max(1, round(0.4 * self.selena_k)), max(1, self.selena_k - 1))

    def check(self) -> None:
        bad = []
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            bad.append("epochs, batch_size and lr must be positive")
        if self.weight_decay < 0 or self.l1 < 0 or self.advreg < 0:
            bad.append("weight_decay, l1 and advreg must be non-negative")
        if not 0 <= self.label_smoothing < 1:
            bad.append("label_smoothing must lie in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            bad.append(f"lr_schedule must be {' or '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0 < self.val_fraction < 1:
            bad.append("val_fraction must lie in (0, 1)")
        if self.dp_epsilon is not None and self.dp_epsilon <= 0:
            bad.append("dp_epsilon must be positive")
        if self.dp_noise_multiplier is not None and self.dp_noise_multiplier <= 0:
            bad.append("dp_noise_multiplier must be positive")
        if self.relaxloss is not None and self.relaxloss <= 0:
            bad.append("relaxloss alpha must be positive")
        if self.hamp is not None and not 0 <= self.hamp < 1:
            bad.append(f"hamp's entropy threshold gamma must lie in [0, 1), got {self.hamp}")
        if self.hamp_alpha < 0:
            bad.append("hamp_alpha must be non-negative")
        if self.selena_k and (self.selena_k < 2 or not 1 <= self.selena_excluded() < self.selena_k):
            bad.append(f"selena needs K >= 2 sub-models and 1 <= L < K, got K={self.selena_k}, L={self.selena_l}")
        if self.selena_k and (self.uses_dp() or self.hamp is not None):
            bad.append("selena trains its own soft labels: it does not combine with dp or hamp")
        if self.dp_batch_size < 1:
            bad.append("dp_batch_size must be positive")
        if self.dp_tune not in DP_TUNING:
            bad.append(f"dp_tune must be {', '.join(DP_TUNING)}, got {self.dp_tune!r}")
        if bad:
            raise InvalidInputError("train settings: " + "; ".join(bad))


@dataclass
class TrainReport:
    """What training did beyond the weights: epochs run, early stop, DP epsilon, and the rows trained on."""

    epochs_run: int = 0
    stopped_early: bool = False
    epsilon: float | None = None
    delta: float | None = None
    dp: dict[str, Any] | None = (
        None  # DP-SGD: sample_rate, noise_multiplier, steps, max_grad_norm, lr, tuning (private.py)
    )
    trained_rows: int = 0  # rows the optimiser trained on (held-out validation rows excluded)
