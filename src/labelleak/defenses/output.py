"""Output-time defenses: what the serving side does to the probabilities a target reveals.

Each is a function ``(p, strength, seed) -> q`` on probabilities (N, C) that never changes a row's argmax, which is
exactly why label-only attacks walk straight through them:

* ``memguard``: MemGuard-style confidence perturbation (Jia et al., CCS 2019, simplified): seeded noise of scale
  ``strength`` on the log-probabilities, with the original top class restored when the noise would move it;
* ``top1``: only a one-hot vector of the predicted class;
* ``round``: probabilities rounded to ``strength`` decimals (ties broken in favour of the predicted class).

They are named in :mod:`labelleak.defenses.registry` and applied by :class:`labelleak.defenses.plan.OutputDefense`,
which the score oracle of a defended target (:class:`labelleak.oracle.scores.DefendedScoreOracle`) calls on every
answer.
"""

from __future__ import annotations

import torch

from labelleak.rng import KeyedStream, content_keys


def memguard(p: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    """Noise keyed by each row's content on the log-probabilities, then the top class swapped back in place."""
    top, rows = p.argmax(1), torch.arange(len(p))
    z = KeyedStream(seed).normal(content_keys(p.float()), 0, p.shape[1]).to(p.dtype)
    q = torch.softmax(torch.log(p.clamp_min(1e-30)) + strength * z, dim=1)
    moved = q.argmax(1)
    swap = moved != top
    a, b = q[rows, top].clone(), q[rows, moved].clone()
    q[rows[swap], top[swap]], q[rows[swap], moved[swap]] = b[swap], a[swap]
    return q


def top1(p: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    """The one-hot vector of the predicted class (``strength`` and ``seed`` are not used)."""
    return torch.nn.functional.one_hot(p.argmax(1), p.shape[1]).to(p.dtype)


def round_decimals(p: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    """Probabilities rounded to ``strength`` decimals, the predicted class nudged up to keep it on a tie."""
    top, rows = p.argmax(1), torch.arange(len(p))
    q = torch.round(p * 10 ** int(strength)) / 10 ** int(strength)
    q[rows, top] += 1e-12
    return q


def whole_decimals(strength: float) -> str | None:
    """The problem with ``round``'s strength, or ``None``: it counts decimals."""
    if strength < 0 or strength != int(strength):
        return f"expected a whole number of decimals, got {strength}"
    return None
