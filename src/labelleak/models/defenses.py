"""Training-time defenses, each a small piece that the training loop composes.

* L2 (``weight_decay``) and L1 penalties, dropout (``ModelSpec.dropout``), label smoothing, data augmentation
  (random horizontal flips and 2-pixel-padded random crops), early stopping on a validation split;
* DP-SGD through Opacus (a target epsilon and delta, or a noise multiplier; clipping norm), with the
  accountant's epsilon reported;
* adversarial regularisation (Nasr, Shokri & Houmansadr, CCS 2018): an inference model learns to tell the
  training batch from a held-out reference batch, and the classifier is penalised by that model's gain;
* RelaxLoss (Chen, Yu & Fritz, ICLR 2022): gradient descent while the batch loss is above alpha; below it,
  alternately gradient ascent and posterior flattening of correctly classified samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random horizontal flip and random crop after zero padding, per sample, for images (B, C, H, W)."""
    if x.dim() != 4:
        return x
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None].to(x.device), torch.flip(x, dims=[3]), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (B, W)
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


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
