"""Online relabelling for the transfer attack, as Li & Zhang's official code (CCS 2021) trains its shadow model.

Every batch of every epoch, each shadow image is shown to the target as a fresh RandAugment view
(:func:`labelleak.models.randaugment.rand_augment`) and the shadow model takes one step on those views with the
target's labels. After each epoch the shadow model's agreement with the target is measured on a fixed held-out
set (the adversary's shadow-test images, labelled by the target once), and the checkpoint with the best agreement
is kept. Every view and every held-out image is one setup query, charged to the attack's ledger: with a total
cap, relabelling stops before a batch the cap (less ``reserve``, kept for the candidates) cannot pay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.logs import get_logger
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, predict_logits
from labelleak.models.randaugment import rand_augment
from labelleak.models.training import batch_objective, default_device, left_out_per_batch
from labelleak.oracle.budget import BudgetedOracle
from labelleak.progress import progress_bar

logger = get_logger(__name__)


@dataclass
class RelabelLog:
    """What online relabelling did: queries sent, epochs run, the kept checkpoint and whether the budget cut it."""

    holdout_labels: np.ndarray  # the target's labels of the held-out set
    queries: int = 0  # setup queries: augmented views plus the held-out set
    epochs_run: int = 0  # epochs begun (one cut short by the budget included)
    best_epoch: int = 0  # 1-based epoch of the kept checkpoint
    agreement_by_epoch: list[float] = field(default_factory=list)  # shadow model vs target on the held-out set
    budget_hit: bool = False  # the total cap stopped relabelling before the last epoch ended
    defense_left_out: list[str] = field(default_factory=list)  # parts of the defense one batch cannot apply


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """Sizes of the batches one epoch of ``n`` samples trains on (and queries): a last batch of one is skipped,
    as in :func:`labelleak.models.train_model`, because BatchNorm cannot train on it."""
    return [s for s in (min(batch_size, n - start) for start in range(0, n, batch_size)) if s >= 2]


@dataclass(frozen=True)
class OnlineRelabelling:
    """Shadow training with online relabelling: ``recipe``'s model, ``epochs`` epochs, RandAugment(num_ops, M)."""

    recipe: ShadowRecipe
    epochs: int
    num_ops: int = 2
    magnitude: int = 9
    seed: int = 0

    def train(
        self,
        oracle: BudgetedOracle,
        x_train: np.ndarray,
        x_held: np.ndarray,
        *,
        reserve: int = 0,
        progress: bool = False,
    ) -> tuple[nn.Module, RelabelLog]:
        """Train on target-labelled views of ``x_train`` (N, C, H, W); keep the best checkpoint on ``x_held``.

        Raises ``BudgetExhaustedError`` when the total cap, less ``reserve``, cannot pay the held-out set and one
        whole epoch (a shadow model of less than one epoch would be noise, so the audit says so instead of
        scoring with it); a cap that runs out later stops relabelling there (``log.budget_hit``).
        """
        if len(oracle.input_shape) != 3:
            raise InvalidInputError(
                f"transfer: relabel=online augments images (C, H, W), got samples of shape {oracle.input_shape}"
            )
        per_epoch = sum(batch_sizes(len(x_train), self.recipe.batch_size))
        if per_epoch == 0:
            raise InvalidInputError(
                f"transfer: relabel=online needs batches of at least 2, got batch_size {self.recipe.batch_size}"
            )
        room = oracle.ledger.setup_room(reserve=reserve)
        if room is not None and room < len(x_held) + per_epoch:
            raise BudgetExhaustedError(
                f"transfer: relabel=online needs {len(x_held) + per_epoch} setup queries (held-out set "
                f"{len(x_held)} + one epoch {per_epoch}) besides the {reserve} kept for the candidates, "
                f"but the total budget leaves {room}"
            )
        held_labels = oracle.query_setup(torch.as_tensor(x_held, dtype=torch.float32))
        log = RelabelLog(holdout_labels=held_labels.numpy(), queries=len(x_held))
        r = self.recipe
        spec = ModelSpec(r.arch, tuple(oracle.input_shape), oracle.n_classes, r.width, tuple(r.hidden))
        plain = TrainSettings(epochs=self.epochs, lr=r.lr, batch_size=r.batch_size, seed=self.seed)
        spec, settings = r.defended(spec, plain)  # the target's defense, as the adaptive adversary knows it
        log.defense_left_out = left_out_per_batch(settings)
        if log.defense_left_out:
            logger.warning(
                "transfer: relabel=online trains one queried batch at a time and cannot apply %s of the defense %r; "
                "its shadow model trains without them (relabel=once applies the whole defense)",
                ", ".join(log.defense_left_out), r.defense,
            )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # dropout, if the architecture has any
            model = init_model(lambda: build_model(spec), self.seed).to(default_device())
            xt = torch.as_tensor(x_train, dtype=torch.float32)
            model.load_state_dict(self._epochs(model, oracle, xt, x_held, log, room, settings, progress))
        return model.eval().cpu(), log

    def _epochs(
        self,
        model: nn.Module,
        oracle: BudgetedOracle,
        xt: torch.Tensor,
        x_held: np.ndarray,
        log: RelabelLog,
        room: int | None,
        settings: TrainSettings,
        progress: bool,
    ) -> dict[str, torch.Tensor]:
        """The training epochs; returns the state of the best checkpoint and fills ``log``."""
        device, r = next(model.parameters()).device, self.recipe
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(model.parameters(), lr=r.lr, weight_decay=settings.weight_decay)
        step = 0
        held = torch.as_tensor(log.holdout_labels)
        best, best_state = -1.0, {k: v.detach().clone() for k, v in model.state_dict().items()}
        with progress_bar("shadow (transfer, online relabelling)", self.epochs, enabled=progress) as bar:
            for epoch in range(1, self.epochs + 1):
                model.train()
                order = torch.randperm(len(xt), generator=gen)
                log.epochs_run = epoch
                for start in range(0, len(order), r.batch_size):
                    idx = order[start : start + r.batch_size]
                    if len(idx) < 2:
                        continue  # as in training: BatchNorm cannot train on a batch of one
                    if room is not None and log.queries + len(idx) > room:
                        log.budget_hit = True
                        break
                    views = rand_augment(
                        xt[idx], gen, num_ops=self.num_ops, magnitude=self.magnitude, bounds=oracle.bounds
                    )
                    labels = oracle.query_setup(views)
                    log.queries += len(idx)
                    loss = batch_objective(model, model(views.to(device)), labels.to(device), settings, step=step)
                    step += 1
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                agreement = int((predict_logits(model, x_held).argmax(1) == held).sum()) / len(held)
                log.agreement_by_epoch.append(agreement)
                if agreement > best:
                    best, log.best_epoch = agreement, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if r.lr_schedule == "cosine":
                    for group in opt.param_groups:
                        group["lr"] = r.lr * 0.5 * (1 + float(np.cos(np.pi * epoch / self.epochs)))
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=1, info=f"agreement {agreement:.3f}")
                if log.budget_hit:
                    break
        return best_state
