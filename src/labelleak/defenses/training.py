"""Training-time defenses: the mechanics the training loop (:mod:`labelleak.models.training`) composes.

Pure tensor functions and one small model, importing nothing of labelleak but its errors, so that ``models/`` can
call them; which defense is on, and how strongly, is a training setting (:class:`labelleak.models.TrainSettings`)
named by the registry (:mod:`labelleak.defenses.registry`).

* L2 (``weight_decay``) and L1 penalties, dropout (``ModelSpec.dropout``), label smoothing, data augmentation
  chosen per kind of data (flips and padded crops for natural images, small shifts and rotations for digits,
  none for tabular data), early stopping on a validation split;
* DP-SGD through Opacus (a target epsilon and delta, or a noise multiplier; clipping norm), with the
  accountant's epsilon reported (:mod:`labelleak.models.private`);
* adversarial regularisation (Nasr, Shokri & Houmansadr, CCS 2018): an inference model learns to tell the
  training batch from a held-out reference batch, and the classifier is penalised by that model's gain;
* RelaxLoss (Chen, Yu & Fritz, ICLR 2022): gradient descent while the batch loss is above alpha; below it,
  alternately gradient ascent and posterior flattening of correctly classified samples;
* HAMP's training (Chen & Pattabiraman, NDSS 2024): high-entropy soft labels, whose entropy is the threshold
  gamma times the largest entropy log(C), and an entropy regulariser that rewards less confident predictions;
* soft-label training in general (:func:`soft_cross_entropy`), which SELENA's self-distillation also uses
  (:mod:`labelleak.models.selena`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from labelleak.errors import InvalidInputError

AUGMENT_POLICIES = ("auto", "flips-crops", "shifts", "none")


def augment_policy(policy: str, input_shape: tuple[int, ...]) -> str:
    """The augmentation to apply to samples of ``input_shape`` (one sample: (C, H, W) or (D,)).

    ``auto`` picks what keeps the label: flips and padded crops for natural (3-channel) images, small shifts and
    rotations for grayscale images such as digits (a flipped 2 is no 2), nothing for tabular data. A forced
    policy that does not suit the data is refused with ``InvalidInputError``: an hours-long sweep should stop
    before training, not end in a meaningless row.
    """
    if policy not in AUGMENT_POLICIES:
        raise InvalidInputError(f"augment: unknown policy {policy!r}; choose from {', '.join(AUGMENT_POLICIES)}")
    image = len(input_shape) == 3
    natural = image and input_shape[0] == 3
    if policy == "auto":
        return "flips-crops" if natural else "shifts" if image else "none"
    if policy != "none" and not image:
        raise InvalidInputError(f"augment={policy} needs images (C, H, W), got tabular samples {input_shape}")
    if policy == "flips-crops" and not natural:
        raise InvalidInputError(
            f"augment=flips-crops suits natural 3-channel images, got {input_shape[0]}-channel ones "
            "(flips change digits' labels); use augment=shifts or augment=auto"
        )
    return policy


def augment_batch(x: torch.Tensor, gen: torch.Generator, policy: str = "flips-crops") -> torch.Tensor:
    """Augment a batch of images (B, C, H, W) per sample with a resolved policy (see :func:`augment_policy`)."""
    if policy == "none" or x.dim() != 4:
        return x
    if policy == "shifts":
        return shift_rotate(x, gen)
    return flip_crop(x, gen)


def flip_crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, then a random crop after zero padding by H/8 pixels (4 on 32x32, as is usual)."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None].to(x.device), torch.flip(x, dims=[3]), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (B, W)
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def shift_rotate(
    x: torch.Tensor, gen: torch.Generator, max_shift: float = 0.1, max_degrees: float = 10.0
) -> torch.Tensor:
    """Random shift by up to ``max_shift`` of the image size and rotation by up to ``max_degrees``, per sample,
    with bilinear resampling and zero fill: the usual label-preserving augmentation of handwritten digits."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * max_degrees * torch.pi / 180
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * 2 * max_shift  # affine_grid's coordinates span [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute weights (biases and norm parameters excluded)."""
    return sum((p.abs().sum() for name, p in model.named_parameters() if p.dim() > 1), torch.zeros(()))


def relaxloss_objective(logits: torch.Tensor, y: torch.Tensor, alpha: float, step: int) -> torch.Tensor:
    """RelaxLoss (Alg. 1 of the paper): the loss to *minimise* for this batch."""
    loss = F.cross_entropy(logits, y)
    if float(loss.detach()) >= alpha:
        return loss
    if step % 2 == 0:
        return -loss  # gradient ascent towards the target loss level
    probs = F.softmax(logits, dim=1).detach()
    n_classes = logits.shape[1]
    p_true = probs.gather(1, y[:, None])
    soft = ((1 - p_true) / (n_classes - 1)).expand(-1, n_classes).clone()
    soft.scatter_(1, y[:, None], p_true)  # keep p_y, spread the rest evenly (posterior flattening)
    correct = (logits.argmax(1) == y).float()
    flat = -(soft * F.log_softmax(logits, dim=1)).sum(1)
    hard = F.cross_entropy(logits, y, reduction="none")
    return (correct * flat + (1 - correct) * hard).mean()


class AdversarialRegulariser:
    """Nasr et al.'s min-max game: an attack model h(softmax, one-hot y) -> P(member)."""

    def __init__(self, n_classes: int, strength: float, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.attack = nn.Sequential(nn.Linear(2 * n_classes, 64), nn.ReLU(), nn.Linear(64, 1))
        self.opt = torch.optim.Adam(self.attack.parameters(), lr=1e-3)
        self.strength, self.n_classes = strength, n_classes

    def _features(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.softmax(logits, 1), F.one_hot(y, self.n_classes).float()], 1)

    def update_attack(
        self, member_logits: torch.Tensor, y_m: torch.Tensor, ref_logits: torch.Tensor, y_r: torch.Tensor
    ) -> None:
        """One step of the inference model on detached outputs (members = 1, reference = 0)."""
        feats = torch.cat([self._features(member_logits.detach(), y_m), self._features(ref_logits.detach(), y_r)])
        target = torch.cat([torch.ones(len(y_m)), torch.zeros(len(y_r))]).to(feats.device)
        self.attack.to(feats.device)
        self.opt.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(self.attack(feats).squeeze(1), target).backward()
        self.opt.step()

    def penalty(self, member_logits: torch.Tensor, y_m: torch.Tensor) -> torch.Tensor:
        """The inference model's gain on the members, added to the classification loss."""
        return self.strength * torch.sigmoid(self.attack(self._features(member_logits, y_m))).log().mean()


def _two_level_entropy(p_true: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Entropy (nats) of a label with ``p_true`` on one class and the rest spread evenly over the others."""
    rest = (1 - p_true) / (n_classes - 1)
    return -(p_true * p_true.clamp_min(1e-30).log() + (n_classes - 1) * rest * rest.clamp_min(1e-30).log())


def hamp_confidence(gamma: float, n_classes: int) -> float:
    """The true class's probability of HAMP's soft label at entropy threshold ``gamma`` in [0, 1).

    The soft label keeps ``p`` on the true class and spreads ``1 - p`` evenly over the other C - 1 classes; its
    entropy falls from log(C) at p = 1/C to 0 at p = 1, so the most confident label whose entropy still reaches
    ``gamma * log(C)`` has the p at which the two are equal (found by bisection: 60 halvings reach float64's
    precision). The true class stays the most likely one, so accuracy is kept while confidence is capped.
    """
    if not 0 <= gamma < 1:
        raise InvalidInputError(f"hamp: the entropy threshold gamma must lie in [0, 1), got {gamma}")
    if n_classes < 2:
        raise InvalidInputError(f"hamp: needs at least 2 classes, got {n_classes}")
    target = gamma * math.log(n_classes)
    lo, hi = torch.tensor(1.0 / n_classes, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    for _ in range(60):
        mid = (lo + hi) / 2
        above = bool(_two_level_entropy(mid, n_classes) >= target)
        lo, hi = (mid, hi) if above else (lo, mid)
    return float(lo)


def hamp_soft_labels(y: torch.Tensor, n_classes: int, gamma: float) -> torch.Tensor:
    """HAMP's soft labels (N, C) for integer labels ``y`` (N,): entropy ``gamma * log(C)`` each (see
    :func:`hamp_confidence`)."""
    p = hamp_confidence(gamma, n_classes)
    soft = torch.full((len(y), n_classes), (1 - p) / (n_classes - 1), dtype=torch.float32, device=y.device)
    soft.scatter_(1, y[:, None].long(), p)
    return soft


def soft_cross_entropy(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (N, C) against soft labels ``soft`` (N, C) (the KL divergence up to the
    labels' own entropy, a constant)."""
    return -(soft * F.log_softmax(logits, dim=1)).sum(1).mean()


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the predicted distributions: HAMP subtracts ``alpha`` times it from the loss."""
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1).mean()
