"""Training and evaluation of classifiers (the paper: Adam, lr 1e-3, batch 128)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labelleak.errors import InvalidInputError
from labelleak.models.settings import TrainReport, TrainSettings
from labelleak.progress import progress_bar
from labelleak.rng import in_content_order


def default_device() -> torch.device:
    """CUDA when present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_training_data(x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    if len(x) == 0:
        raise InvalidInputError("training data: no samples")
    if len(x) != len(y):
        raise InvalidInputError(f"training data: {len(x)} samples but {len(y)} labels")
    if y.min() < 0 or y.max() >= n_classes:
        raise InvalidInputError(f"training labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")


def train_model(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    *,
    n_classes: int,
    description: str = "training",
    progress: bool = True,
    device: torch.device | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> nn.Module:
    """Train ``model`` in place; returns it in eval mode on the CPU (see :func:`train_with_report`)."""
    return train_with_report(
        model,
        x,
        y,
        settings,
        n_classes=n_classes,
        description=description,
        progress=progress,
        device=device,
        validation=validation,
    )[0]


def train_with_report(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    *,
    n_classes: int,
    description: str = "training",
    progress: bool = True,
    device: torch.device | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[nn.Module, TrainReport]:
    """Adam on cross-entropy with the defenses named in ``settings``.

    Early stopping and adversarial regularisation need held-out rows: ``validation`` (x, y) when given, so that
    the optimiser trains on every row of ``x`` (an audit's members must be exactly those rows; see
    :func:`labelleak.data.split.validation_part`); otherwise a seeded ``val_fraction`` of ``x`` is held out and
    never trained on. DP-SGD trains on every row and tunes on ``validation`` (rows outside ``x``; see
    :mod:`labelleak.models.private`). ``report.trained_rows`` counts the rows the
    optimiser saw.

    All randomness (shuffling, dropout, augmentation, DP noise) is seeded from ``settings.seed``; the caller's
    global RNG state is left as it was.
    """
    _check_training_data(x, y, n_classes)
    if validation is not None:
        _check_training_data(*validation, n_classes)
    settings.check()
    device = device or default_device()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        if settings.uses_dp():
            from labelleak.models.private import train_dp

            model, report = train_dp(
                model, x, y, settings, device=device, description=description, progress=progress, tuning=validation
            )
        elif settings.selena_k:
            from labelleak.models.selena import train_selena

            model, report = train_selena(model, x, y, settings, n_classes, device, description, progress, validation)
        else:
            model, report = _train(model, x, y, settings, n_classes, device, description, progress, validation)
    return model.eval().cpu(), report


def validation_size(n: int, settings: TrainSettings) -> int:
    """Held-out rows training on ``n`` rows uses with ``settings``: ``val_fraction`` of them with early stopping or
    adversarial regularisation; ``n`` for DP-SGD tuned outside the training set (its tuning runs then match the
    final run's sample rate and steps); else 0."""
    if settings.uses_dp():  # DP-SGD tunes on as many rows outside the training set as it trains on
        return n if settings.dp_tune == "outside" else 0
    if settings.early_stopping is None and settings.advreg == 0:
        return 0
    return max(1, int(round(n * settings.val_fraction)))


def _holdout(
    n: int, settings: TrainSettings, gen: torch.Generator, n_given: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indices to train on, and a held-out part when early stopping or adversarial regularisation needs one:
    rows ``n .. n + n_given - 1`` (the caller's validation data, appended) when given, else carved out of the n."""
    order = torch.randperm(n, generator=gen)
    if settings.early_stopping is None and settings.advreg == 0:
        return order, None
    if n_given:
        return order, torch.arange(n, n + n_given)
    k = validation_size(n, settings)
    if n - k < 2:
        raise InvalidInputError(f"training data: {n} samples are too few to hold out a validation split")
    return order[k:], order[:k]


def _batch_loss(
    model: nn.Module,
    logits: torch.Tensor,
    yt: torch.Tensor,
    idx: torch.Tensor,
    settings: TrainSettings,
    *,
    soft: torch.Tensor | None,
    step: int,
) -> torch.Tensor:
    """The training objective of one batch before AdvReg's penalty: soft labels (SELENA, HAMP with its entropy
    term), RelaxLoss, or cross-entropy with label smoothing; plus the L1 penalty."""
    from labelleak.defenses.training import l1_penalty, prediction_entropy, relaxloss_objective, soft_cross_entropy

    if soft is not None:
        loss = soft_cross_entropy(logits, soft[idx])
        if settings.hamp is not None:
            loss = loss - settings.hamp_alpha * prediction_entropy(logits)
    elif settings.relaxloss is not None:
        loss = relaxloss_objective(logits, yt[idx], settings.relaxloss, step)
    else:
        loss = F.cross_entropy(logits, yt[idx], label_smoothing=settings.label_smoothing)
    if settings.l1:
        loss = loss + settings.l1 * l1_penalty(model)
    return loss


PER_BATCH_ONLY = ("dp", "selena", "advreg")  # defenses that need the whole training set, not one batch at a time


def left_out_per_batch(settings: TrainSettings) -> list[str]:
    """The parts of ``settings``' defense that training on one labelled batch at a time cannot apply (DP-SGD's
    sampling and accounting, SELENA's split, AdvReg's reference set)."""
    flags = {"dp": settings.uses_dp(), "selena": bool(settings.selena_k), "advreg": bool(settings.advreg)}
    return [name for name in PER_BATCH_ONLY if flags[name]]


def batch_objective(
    model: nn.Module, logits: torch.Tensor, labels: torch.Tensor, settings: TrainSettings, *, step: int
) -> torch.Tensor:
    """The defended training loss of one batch whose labels arrive with it (online relabelling): HAMP's soft
    labels and entropy term, RelaxLoss, label smoothing and L1, as :func:`train_model` applies them."""
    from labelleak.defenses.training import hamp_soft_labels

    soft = None if settings.hamp is None else hamp_soft_labels(labels, logits.shape[1], settings.hamp)
    every = torch.arange(len(labels), device=labels.device)
    return _batch_loss(model, logits, labels, every, settings, soft=soft, step=step)


def _train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings,
    n_classes: int,
    device: torch.device,
    description: str,
    progress: bool,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    soft_targets: torch.Tensor | None = None,
) -> tuple[nn.Module, TrainReport]:
    """The plain training loop; ``soft_targets`` (N, C), one row per row of ``x``, replaces the labels in the loss
    (SELENA's self-distillation), as HAMP's soft labels do when ``settings.hamp`` is set."""
    from labelleak.defenses.training import AdversarialRegulariser, augment_batch, augment_policy, hamp_soft_labels

    policy = augment_policy(settings.augment, tuple(x.shape[1:]))

    model.to(device).train()
    n_given = 0 if validation is None else len(validation[0])
    if validation is not None:
        x, y = np.concatenate([x, validation[0]]), np.concatenate([y, validation[1]])
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.int64, device=device)
    soft = None
    if soft_targets is not None:  # validation rows are never trained on: their one-hot labels only fill the rows
        extra = F.one_hot(yt[len(soft_targets) :], n_classes).float()
        soft = torch.cat([soft_targets.to(device, torch.float32), extra])
    elif settings.hamp is not None:
        soft = hamp_soft_labels(yt, n_classes, settings.hamp)
    gen = torch.Generator().manual_seed(settings.seed)
    train_idx, held = _holdout(len(xt) - n_given, settings, gen, n_given)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    advreg = AdversarialRegulariser(n_classes, settings.advreg, settings.seed) if settings.advreg else None
    report, best, best_state, waited, step = TrainReport(trained_rows=len(train_idx)), -1.0, None, 0, 0
    with progress_bar(description, settings.epochs, enabled=progress) as bar:
        for _epoch in range(settings.epochs):
            model.train()
            order = train_idx[torch.randperm(len(train_idx), generator=gen)].to(device)
            total = 0.0
            for start in range(0, len(order), settings.batch_size):
                idx = order[start : start + settings.batch_size]
                if len(idx) < 2 and len(order) > 1:
                    continue  # BatchNorm cannot train on a batch of one
                xb = augment_batch(xt[idx], gen, policy)
                logits = model(xb)
                loss = _batch_loss(model, logits, yt, idx, settings, soft=soft, step=step)
                if advreg is not None:
                    assert held is not None  # _holdout keeps a reference part whenever advreg is on
                    ref = held[torch.randint(0, len(held), (len(idx),), generator=gen)].to(device)
                    ref_logits = model(xt[ref])
                    advreg.update_attack(logits, yt[idx], ref_logits, yt[ref])
                    loss = loss + advreg.penalty(logits, yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                total += float(loss.detach()) * len(idx)
            report.epochs_run += 1
            if settings.lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * report.epochs_run / settings.epochs))
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, info=f"loss {total / max(len(order), 1):.4f}")
            if settings.early_stopping is not None and held is not None:
                model.eval()
                with torch.no_grad():
                    val = float((model(xt[held.to(device)]).argmax(1) == yt[held.to(device)]).float().mean())
                if val > best:
                    best, waited = val, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    waited += 1
                    if waited >= settings.early_stopping:
                        report.stopped_early = True
                        break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, report


def init_model(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Call ``build()`` with the torch RNG seeded by ``seed``, without changing the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for ``x``, in batches; returns a CPU float32 tensor (N, classes)."""
    model.eval()
    device = next(model.parameters()).device
    xt = torch.as_tensor(x, dtype=torch.float32)
    if len(xt) == 0:
        return torch.empty(0)

    def batches(rows: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [model(rows[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(rows), batch_size)]
        )

    return in_content_order(xt, batches)  # the same logits for a sample whatever the order of the others


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    if len(x) == 0:
        return float("nan")
    return float((predict_logits(model, x).argmax(1).numpy() == y).mean())
