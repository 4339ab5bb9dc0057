"""What the adversary's own data and shadow model give a boundary search, at no query cost.

* :func:`nearest_other_class`: the adversary's samples of other classes nearest to each candidate (L2 in the
  input space): starting points whose label probably differs.
* :func:`shadow_face_starts`: points beyond the shadow model's nearest class faces, linearised at the candidate
  (white-box adversarial examples of the shadow model, one per face).
* :func:`margin_prior`: the shadow model's input gradient of ``logsumexp_{k != y} s_k - s_y`` (towards the other
  classes), the transfer prior of :mod:`labelleak.attacks.guided`.

Every model evaluation and distance computation runs on rows sorted by content key in fixed-size chunks, so a
candidate's result does not depend on which other candidates share the call or on their order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from labelleak.attacks.guided import PriorFn
from labelleak.rng import content_keys, in_key_order

_CHUNK = 256  # candidates per model call


def _chunked(fn: PriorFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(x[i : i + _CHUNK], y[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)]) if len(x) else x


def nearest_other_class(
    x: torch.Tensor, y: torch.Tensor, pool_x: torch.Tensor, pool_y: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` samples of ``pool_x`` (P, *shape) whose label differs from each candidate's, nearest first.

    Returns starts (N, k, *shape) and which of them exist (N, k) (fewer than ``k`` pool samples of other classes).
    """
    n = len(x)
    flat = pool_x.reshape(len(pool_x), -1).to(torch.float64)
    sq = (flat**2).sum(1)
    k_eff = min(k, len(pool_x))

    def nearest(rows: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(rows), _CHUNK):
            r = rows[i : i + _CHUNK]
            xr = x[r].reshape(len(r), -1).to(torch.float64)
            d2 = (xr**2).sum(1, keepdim=True) + sq[None, :] - 2 * xr @ flat.T
            d2 = torch.where(pool_y[None, :] == y[r][:, None], math.inf, d2)
            out.append(torch.sort(d2, dim=1, stable=True).indices[:, :k_eff])
        return torch.cat(out) if out else torch.empty(0, k_eff, dtype=torch.int64)

    idx = in_key_order(content_keys(x), nearest, torch.arange(n))  # (N, k_eff)
    valid = pool_y[idx] != y[:, None]
    starts = torch.zeros(n, k, *x.shape[1:])
    starts[:, :k_eff] = pool_x[idx].to(torch.float32)
    mask = torch.zeros(n, k, dtype=torch.bool)
    mask[:, :k_eff] = valid
    return starts, mask


def shadow_face_starts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    m: int,
    *,
    bounds: tuple[float, float],
    overshoot: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting points towards the shadow model's ``m`` nearest class faces, nearest first: (N, m, *shape), (N, m).

    For each other class j the shadow's margin ``s_y - s_j`` is linearised at the candidate (DeepFool's first step,
    Moosavi-Dezfooli et al., CVPR 2016): the face lies at ``gap_j / |grad_j|`` along ``grad_j``; the start is
    ``overshoot`` times that far (at least 1% of the input range), so that it probably crosses the target's face too.
    """
    model.eval()
    device = next(model.parameters()).device
    n_classes = None

    def faces(rows: torch.Tensor) -> torch.Tensor:
        nonlocal n_classes
        out = []
        for i in range(0, len(rows), _CHUNK):
            r = rows[i : i + _CHUNK]
            xs = x[r].to(device).detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(xs).double()
                own = logits.gather(1, y[r].to(device)[:, None]).squeeze(1)
                grads = [
                    torch.autograd.grad((logits[:, j] - own).sum(), xs, retain_graph=True)[0].reshape(len(r), -1)
                    for j in range(logits.shape[1])
                ]
            g = torch.stack(grads, 1).detach().cpu().to(torch.float64)  # (R, K, D)
            gap = (own[:, None] - logits).detach().cpu()  # (R, K)
            norm = g.norm(dim=2).clamp_min(1e-12)
            dist = (gap.clamp_min(0) / norm).clamp_min(0.01 * (bounds[1] - bounds[0]))
            dist = torch.where(torch.arange(logits.shape[1])[None, :] == y[r][:, None], math.inf, dist)
            order = torch.sort(dist, dim=1, stable=True).indices[:, :m]
            step = (overshoot * dist / norm)[:, :, None] * g
            pts = x[r].reshape(len(r), 1, -1).to(torch.float64) + step.gather(
                1, order[:, :, None].expand(-1, -1, g.shape[2])
            )
            ok = torch.isfinite(dist.gather(1, order))
            out.append(torch.cat([pts.clamp(bounds[0], bounds[1]).to(torch.float32), ok[:, :, None].float()], 2))
        return torch.cat(out) if out else torch.empty(0, m, math.prod(x.shape[1:]) + 1)

    packed = in_key_order(content_keys(x), faces, torch.arange(len(x)))  # (N, m', D + 1)
    k = packed.shape[1]
    starts = torch.zeros(len(x), m, *x.shape[1:])
    starts[:, :k] = packed[:, :, :-1].reshape(len(x), k, *x.shape[1:])
    valid = torch.zeros(len(x), m, dtype=torch.bool)
    valid[:, :k] = packed[:, :, -1] > 0
    return starts, valid


def margin_prior(model: nn.Module) -> PriorFn:
    """The prior: gradient of the shadow model's log-odds of any other class against the label, per row."""
    model.eval()
    device = next(model.parameters()).device

    def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xs = x.to(device).detach().requires_grad_(True)
        logits = model(xs).double()
        own = logits.gather(1, y.to(device)[:, None]).squeeze(1)
        others = logits.scatter(1, y.to(device)[:, None], -math.inf).logsumexp(1)
        (grad,) = torch.autograd.grad((others - own).sum(), xs)
        return grad.detach().cpu()

    def prior(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return _chunked(one, x, y)

    return prior
