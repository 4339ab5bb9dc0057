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
* clipping norm and learning rate chosen by short tuning runs (:func:`_tune`) on data that is paid for. By default
  (``dp_tune="outside"``) they read only rows outside the target's training set, handed in as ``tuning`` (the
  audit gives as many rows beyond its four parts as the target trains on, after any public ones:
  :func:`labelleak.data.split.validation_part`): a seeded permutation splits them into a validation part (the
  first ``val_fraction``) and a tuning-train part (the rest); each pair of ``CLIP_GRID`` x ``LR_FACTORS *
  settings.lr`` trains a DP model on the tuning-train part for half the epochs at the final run's noise
  multiplier, and the pair with the best validation accuracy wins (ties: the first in grid order). No row of the
  training set, no candidate and no adversary data is read, so the choice costs the training set no privacy and
  the accountant's epsilon is that of the whole procedure. ``dp_tune="private"`` (the defense ``dp-tune=private``)
  tunes on the training set itself, as most practice does: the choice then reads the private rows, and reading
  validation accuracy is not a DP mechanism, so no accountant here bounds the whole procedure (Papernot &
  Steinke, ICLR 2022, show what it takes). labelleak refuses to print one epsilon for it: ``report.epsilon`` is
  ``None``, ``report.dp`` says ``tuning_data: "private"`` and ``epsilon_excludes_tuning: true``, and keeps the
  final run's accountant epsilon apart as ``epsilon_final_run``. ``dp_tune="off"`` (or ``dp-clip=``), and
  ``"outside"`` when no rows outside are given (an adversary's own models), use the given clipping norm and lr.
  A model pre-trained on public data (``settings.init``, the ``public=N`` defense modifier) is tuned over
  ``LR_FACTORS_FINETUNE`` instead: fine-tuning takes smaller steps.

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


def tuning_split(n: int, settings: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The (validation, tuning-train) positions of ``n`` tuning rows: a seeded permutation, ``val_fraction`` first."""
    k = max(1, int(round(n * settings.val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed))
    if n - k < 2:
        raise InvalidInputError(f"DP-SGD tuning: {n} samples are too few to hold out a validation split")
    return order[:k], order[k:]


def _tune(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, sched: DPSchedule, settings: Any, device: torch.device
) -> tuple[float, float, list[dict[str, float]]]:
    """Clipping norm and learning rate with the best validation accuracy on the tuning rows ``x, y`` (see the
    module docstring: outside the training set unless ``dp_tune="private"``)."""
    val, train = tuning_split(len(x), settings)
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


def _tuning_data(
    x: torch.Tensor, y: torch.Tensor, settings: Any, tuning: tuple[np.ndarray, np.ndarray] | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The rows the tuning runs read: ``tuning`` (outside the training set), the training rows themselves
    (``private``), or none (``off``, or ``outside`` without ``tuning``: then the given clip and lr are used)."""
    if settings.dp_tune == "off":
        return None
    if settings.dp_tune == "private":
        return x, y
    if tuning is None:  # nothing outside the training set to tune on: the given clip and lr, never the private rows
        return None
    return torch.as_tensor(tuning[0], dtype=torch.float32), torch.as_tensor(tuning[1], dtype=torch.int64)


def train_dp(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    *,
    device: torch.device,
    description: str,
    progress: bool,
    tuning: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[nn.Module, TrainReport]:
    """Train with DP-SGD; returns the (unwrapped) model and a ``TrainReport`` carrying epsilon, delta and the
    run's sample rate, noise multiplier, steps, clipping norm, learning rate and what the tuning read
    (``report.dp``). ``tuning``: rows outside ``x`` for the tuning runs (``dp_tune="outside"``, the default)."""
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
        tune_on = _tuning_data(xt, yt, settings, tuning)
        if tune_on is not None:
            clip, lr, trials = _tune(model, *tune_on, sched, settings, device)
        bar_text = description + " [DP-SGD]" if progress else None
        model, engine = _dp_run(model, xt, yt, sched, clip=clip, lr=lr, settings=settings, device=device,
                                bar_text=bar_text)  # fmt: skip
        report = TrainReport(epochs_run=sched.epochs, trained_rows=len(xt))
        final_epsilon = float(engine.get_epsilon(settings.dp_delta))
    private_tuning = settings.dp_tune == "private"
    # tuned on the private rows: the final run's epsilon is not the procedure's, and no single number is printed
    report.epsilon = None if private_tuning else final_epsilon
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
        "tuning_data": settings.dp_tune if tune_on is not None else "off",  # outside (the training set), private, off
        "tuning_rows": 0 if tune_on is None else len(tune_on[0]),
        "epsilon_excludes_tuning": private_tuning,
        "epsilon_final_run": final_epsilon,
    }
    return model, report
