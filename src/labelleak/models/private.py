"""DP-SGD training through Opacus (Abadi et al., CCS 2016), the way practitioners run it, with the accountant's
epsilon reported.

The recipe (Opacus' tutorials; De et al. 2022, "Unlocking high-accuracy differentially private image
classification through scale"; Ponomareva et al. 2023, "How to DP-fy ML"):

* normalisation Opacus accepts: BatchNorm mixes samples and is refused, build the model with
  ``ModelSpec(groupnorm=True)`` (``parse_defense`` does so for ``dp=``);
* Poisson sampling with an expected logical batch of ``settings.dp_batch_size`` (sample rate
  ``q = 1 / ceil(n / dp_batch_size)``, as Opacus derives it from the loader), run as physical batches of at most
  ``PHYSICAL_BATCH`` samples through virtual steps (Opacus' ``BatchMemoryManager``): one noisy step per logical
  batch;
* epochs fixed by the privacy budget (:func:`dp_schedule`): for a target epsilon, the most epochs (at most
  ``settings.epochs``) for which the noise multiplier calibrated to exactly that many steps stays at or below
  ``MAX_NOISE``, at least one epoch; a small epsilon thus trains for fewer epochs rather than drowning every step
  in noise;
* clipping norm and learning rate chosen by a short tuning run (:func:`_tune`): the target's own training data
  is split by a seeded permutation into a validation part (the first ``val_fraction``) and a tuning-train part
  (the rest); each pair of ``CLIP_GRID`` x ``LR_FACTORS * settings.lr`` trains a DP model on the tuning-train part
  for half the epochs at the final run's noise multiplier and sample rate, and the pair with the best validation
  accuracy wins (ties: the first in grid order). The final model then trains on all the target's data. No
  candidate non-member and no adversary data is ever used; as in most practice, the tuning run's own privacy cost
  is not accounted (Papernot & Steinke, ICLR 2022, bound it). A model pre-trained on public data
  (``settings.init``, the ``public=N`` defense modifier) is tuned over ``LR_FACTORS_FINETUNE`` instead:
  fine-tuning takes smaller steps.

The optimiser is Adam on clipped, noised per-sample gradients (DP-Adam).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labelleak._extras import missing_extra
from labelleak.errors import InvalidInputError
from labelleak.models.settings import TrainReport, TrainSettings
from labelleak.progress import progress_bar

PHYSICAL_BATCH = 64  # largest batch whose per-sample gradients are held at once (memory only, not privacy)
MAX_NOISE = 2.0  # noise multiplier above which the epochs are cut instead (see dp_schedule)
CLIP_GRID = (0.1, 1.0)
LR_FACTORS = (1.0, 3.0)
LR_FACTORS_FINETUNE = (0.1, 1.0)  # a pre-trained model (settings.init) is fine-tuned with smaller steps


@dataclass(frozen=True)
class DPSchedule:
    """Sampling and noise of one DP-SGD run: ``steps_per_epoch`` Poisson batches of rate ``sample_rate``."""

    sample_rate: float
    steps_per_epoch: int
    epochs: int
    noise_multiplier: float

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def _calibrate(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha": a looser, still valid bound
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant="rdp"
            )
        )


def dp_schedule(n: int, settings: Any) -> DPSchedule:
    """Sample rate, epochs and noise multiplier for ``n`` training samples (the rule in the module docstring).

    With a fixed ``dp_noise_multiplier`` the epochs are ``settings.epochs``; with a target ``dp_epsilon`` they
    are the largest count <= ``settings.epochs`` whose calibrated noise multiplier is <= ``MAX_NOISE`` (1 when
    even one epoch needs more).
    """
    per_epoch = math.ceil(n / settings.dp_batch_size)
    q = 1.0 / per_epoch
    if settings.dp_epsilon is None:
        return DPSchedule(q, per_epoch, settings.epochs, float(settings.dp_noise_multiplier))
    sigma = lambda e: _calibrate(settings.dp_epsilon, settings.dp_delta, q, e * per_epoch)  # noqa: E731
    low, high = 1, settings.epochs  # sigma grows with the epochs: bisect for the last one within MAX_NOISE
    if sigma(high) <= MAX_NOISE:
        low = high
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if sigma(mid) <= MAX_NOISE else (low, mid - 1)
    return DPSchedule(q, per_epoch, low, sigma(low))


def _check_model(model: nn.Module) -> None:
    from opacus.validators import ModuleValidator

    for module in model.modules():  # Opacus' backward hooks forbid in-place activations
        if isinstance(module, nn.ReLU):
            module.inplace = False
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise InvalidInputError(f"DP-SGD cannot train this model ({problems[0]}); build it with groupnorm=True")


def _dp_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sched: DPSchedule,
    *,
    clip: float,
    lr: float,
    settings: Any,
    device: torch.device,
    bar_text: str | None,
) -> tuple[nn.Module, Any]:
    """One DP-SGD run with Poisson sampling and virtual steps; returns the unwrapped model and the engine."""
    from opacus import PrivacyEngine
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    model.to(device).train()
    gen = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=settings.dp_batch_size, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=settings.weight_decay)
    engine = PrivacyEngine(accountant="rdp", secure_mode=False)
    private, opt, loader = engine.make_private(
        module=model,
        optimizer=opt,
        data_loader=loader,
        noise_multiplier=sched.noise_multiplier,
        max_grad_norm=clip,
        poisson_sampling=True,
        noise_generator=torch.Generator(device=device).manual_seed(settings.seed + 1),
    )
    assert abs(loader.sample_rate - sched.sample_rate) < 1e-12 and len(loader) == sched.steps_per_epoch
    with progress_bar(bar_text or "", sched.epochs, enabled=bar_text is not None) as bar:
        for _epoch in range(sched.epochs):
            with BatchMemoryManager(data_loader=loader, max_physical_batch_size=PHYSICAL_BATCH, optimizer=opt) as mem:
                for xb, yb in mem:
                    opt.zero_grad(set_to_none=True)
                    # an empty Poisson batch still makes a (pure-noise) step, as the accountant assumes
                    F.cross_entropy(private(xb.to(device)), yb.to(device), reduction="sum").div(
                        max(len(yb), 1)
                    ).backward()
                    opt.step()
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1)
    return private._module, engine


def _tune(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, sched: DPSchedule, settings: Any, device: torch.device
) -> tuple[float, float, list[dict[str, float]]]:
    """Clipping norm and learning rate with the best validation accuracy (see the module docstring)."""
    n = len(x)
    k = max(1, int(round(n * settings.val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed))
    val, train = order[:k], order[k:]
    if len(train) < 2:
        raise InvalidInputError(f"DP-SGD tuning: {n} samples are too few to hold out a validation split")
    per_epoch = math.ceil(len(train) / settings.dp_batch_size)
    short = DPSchedule(1.0 / per_epoch, per_epoch, max(1, sched.epochs // 2), sched.noise_multiplier)
    trials = []
    for clip in CLIP_GRID:
        for factor in LR_FACTORS_FINETUNE if settings.init else LR_FACTORS:
            lr = settings.lr * factor
            trial, _ = _dp_run(
                copy.deepcopy(model), x[train], y[train], short, clip=clip, lr=lr, settings=settings, device=device,
                bar_text=None,
            )  # fmt: skip
            with torch.no_grad():
                acc = float((trial.eval()(x[val].to(device)).argmax(1).cpu() == y[val]).float().mean())
            trials.append({"max_grad_norm": clip, "lr": lr, "val_accuracy": acc})
    best = max(trials, key=lambda t: t["val_accuracy"])  # max keeps the first of equals: grid order breaks ties
    return best["max_grad_norm"], best["lr"], trials


def train_dp(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    *,
    device: torch.device,
    description: str,
    progress: bool,
) -> tuple[nn.Module, TrainReport]:
    """Train with DP-SGD; returns the (unwrapped) model and a ``TrainReport`` carrying epsilon, delta and the
    run's sample rate, noise multiplier, steps, clipping norm and learning rate (``report.dp``)."""
    try:
        import opacus  # noqa: F401
    except ImportError as exc:
        raise missing_extra("dp", "DP-SGD training") from exc

    _check_model(model)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about secure RNG and full backward hooks
        sched = dp_schedule(len(xt), settings)
        clip, lr = settings.dp_max_grad_norm, settings.lr
        trials: list[dict[str, float]] = []
        if settings.dp_tune:
            clip, lr, trials = _tune(model, xt, yt, sched, settings, device)
        bar_text = description + " [DP-SGD]" if progress else None
        model, engine = _dp_run(model, xt, yt, sched, clip=clip, lr=lr, settings=settings, device=device,
                                bar_text=bar_text)  # fmt: skip
        report = TrainReport(epochs_run=sched.epochs, trained_rows=len(xt))
        report.epsilon = float(engine.get_epsilon(settings.dp_delta))
    report.delta = settings.dp_delta
    steps = sum(s for _, _, s in engine.accountant.history)
    report.dp = {
        "sample_rate": sched.sample_rate,
        "noise_multiplier": sched.noise_multiplier,
        "steps": steps,
        "expected_batch": sched.sample_rate * len(xt),
        "max_grad_norm": clip,
        "lr": lr,
        "tuning": trials,
    }
    return model, report
