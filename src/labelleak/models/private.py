"""DP-SGD training through Opacus (Abadi et al., CCS 2016), with the accountant's epsilon reported.

The optimiser is Adam on clipped, noised per-sample gradients (DP-Adam), with Poisson sampling as Opacus does
by default. BatchNorm mixes samples and is refused: build the model with ``ModelSpec(groupnorm=True)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labelleak._extras import missing_extra
from labelleak.errors import InvalidInputError
from labelleak.models.settings import TrainReport, TrainSettings
from labelleak.progress import progress_bar


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
    """Train with DP-SGD; returns the (unwrapped) model and a ``TrainReport`` carrying epsilon and delta."""
    try:
        from opacus import PrivacyEngine
        from opacus.validators import ModuleValidator
    except ImportError as exc:
        raise missing_extra("dp", "DP-SGD training") from exc

    for module in model.modules():  # Opacus' backward hooks forbid in-place activations
        if isinstance(module, nn.ReLU):
            module.inplace = False
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise InvalidInputError(f"DP-SGD cannot train this model ({problems[0]}); build it with groupnorm=True")
    model.to(device).train()
    data = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64))
    gen = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(data, batch_size=settings.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    noise_gen = torch.Generator(device=device).manual_seed(settings.seed + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about secure RNG and full backward hooks
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        if settings.dp_epsilon is not None:
            private, opt, loader = engine.make_private_with_epsilon(
                module=model,
                optimizer=opt,
                data_loader=loader,
                target_epsilon=settings.dp_epsilon,
                target_delta=settings.dp_delta,
                epochs=settings.epochs,
                max_grad_norm=settings.dp_max_grad_norm,
                noise_generator=noise_gen,
            )
        else:
            private, opt, loader = engine.make_private(
                module=model,
                optimizer=opt,
                data_loader=loader,
                noise_multiplier=settings.dp_noise_multiplier,
                max_grad_norm=settings.dp_max_grad_norm,
                noise_generator=noise_gen,
            )
        report = TrainReport()
        with progress_bar(description + " [DP-SGD]", settings.epochs, enabled=progress) as bar:
            for _epoch in range(settings.epochs):
                for xb, yb in loader:
                    if len(xb) == 0:
                        continue  # Poisson sampling can draw an empty batch
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(private(xb.to(device)), yb.to(device)).backward()
                    opt.step()
                report.epochs_run += 1
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=1)
        report.epsilon = float(engine.get_epsilon(settings.dp_delta))
    report.delta = settings.dp_delta
    return private._module, report
