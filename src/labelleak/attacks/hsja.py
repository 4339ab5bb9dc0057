"""HopSkipJump (Chen, Jordan & Wainwright, S&P 2020), untargeted, L2 and Linf, batched across candidates.

Written from the paper's Algorithm 2 (with the settings of its reference implementation):

* initialisation: uniform noise in the oracle's bounds until the label changes (at most ``init_size`` tries;
  on images every other try is low-resolution noise, see ``_Run._init_noise``), a blend search towards the
  original, then a binary search to the boundary;
* iteration t = 1..max_iter: gradient-direction estimate at the boundary point from
  ``min(init_eval * sqrt(t), max_eval)`` random unit directions (Gaussian for L2, uniform in [-1, 1] for Linf) at
  radius delta_t, with baseline subtraction (Eq. 16); geometric step search from xi_t = dist / sqrt(t), halving
  until the label still differs; binary search back to the boundary with threshold
  theta = gamma / d^(3/2) (L2) or gamma / d^2 (Linf);
* delta_1 = 0.1 (hi - lo), then delta_t = sqrt(d) theta dist (L2) or d theta dist (Linf).

Every phase is issued to the oracle as one batch over all still-active candidates (chunked only to bound
memory). Randomness never depends on the other candidates, their order, or the chunk size: the initial noise
comes from :class:`labelleak.rng.KeyedStream` keyed by each candidate's content, and the gradient-estimation
directions of iteration t are common random numbers, drawn once per iteration from a generator seeded by
(seed, t) and shared by all candidates (each candidate still sees fresh i.i.d. directions at every iteration;
drawing them once instead of once per candidate removes most of the random-number cost).

Budgets: each candidate plans its gradient sample count so that a step search and a binary search still fit in
its remaining budget; a candidate that cannot afford a useful iteration stops with its best point so far.
Deviation from the paper: the step search gives up after 30 halvings (the reference code loops forever).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle
from labelleak.rng import KeyedStream, content_keys, hash32

Norm = Literal["l2", "linf"]
_INIT_STEP = 1 << 20  # step ids of the random-noise initialisation rounds
_MAX_HALVINGS = 30
_BLEND_TOL = 1e-3
_DIRECTION_BLOCK = 32  # gradient-estimation directions summed per block (a multiple of 16, see _estimate)


@dataclass
class BoundarySearch:
    """Outcome of a minimal-perturbation search, one row per candidate."""

    adv: torch.Tensor  # (N, D) best adversarial point found; the original where none was found
    found: torch.Tensor  # (N,) bool
    best_at: torch.Tensor  # (M, N) best distance within each milestone's query budget (inf: none yet)
    iterations: int
    stats: dict[str, float] = field(default_factory=dict)  # search diagnostics (e.g. how often a prior was used)


def lp_distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Row-wise norm of (N, D) perturbations: ``l0`` (entries above 1e-6), ``l1``, ``l2`` or ``linf``."""
    if norm == "l0":
        return (delta.abs() > 1e-6).sum(1).to(delta.dtype)
    if norm == "l1":
        return delta.abs().sum(1)
    if norm == "l2":
        return delta.norm(dim=1)
    if norm == "linf":
        return delta.abs().amax(1)
    raise InvalidInputError(f"norm: expected l0, l1, l2 or linf, got {norm!r}")


def box_diameter(bounds: tuple[float, float], d: int, norm: str) -> float:
    """Largest possible perturbation size in ``norm`` inside the box ``bounds`` in ``d`` dimensions."""
    span = bounds[1] - bounds[0]
    return {"l0": float(d), "l1": span * d, "l2": span * math.sqrt(d), "linf": span}[norm]


class HopSkipJump:
    """Batched, budgeted, seeded HopSkipJump; defaults are the paper's (and ART's) settings."""

    def __init__(
        self,
        *,
        norm: Norm = "l2",
        max_iter: int = 50,
        max_eval: int = 10_000,
        init_eval: int = 100,
        init_size: int = 100,
        gamma: float = 1.0,
        seed: int = 0,
        chunk_elements: int = 1 << 23,
    ) -> None:
        if norm not in ("l2", "linf"):
            raise InvalidInputError(f"norm: expected 'l2' or 'linf', got {norm!r}")
        for name, value in (
            ("max_iter", max_iter),
            ("max_eval", max_eval),
            ("init_eval", init_eval),
            ("init_size", init_size),
            ("chunk_elements", chunk_elements),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_iter" else 1):
                raise InvalidInputError(f"{name}: expected a positive integer, got {value!r}")
        if gamma <= 0:
            raise InvalidInputError(f"gamma: expected a positive number, got {gamma}")
        self.norm, self.max_iter, self.max_eval = norm, max_iter, max_eval
        self.init_eval, self.init_size, self.gamma = init_eval, init_size, gamma
        self.seed, self.chunk_elements = seed, chunk_elements

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise if this attack cannot work on inputs of ``shape`` (any shape suits HopSkipJump)."""

    def _generator(self, step: int) -> torch.Generator:
        seed = int(hash32(torch.tensor((self.seed * 1_000_003 + step) & 0xFFFFFFFF)))
        return torch.Generator().manual_seed(seed * 7919 + step)

    def directions(self, step: int, count: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Unit random directions (count, D) of iteration ``step``, shared by all candidates."""
        gen = self._generator(step)
        if self.norm == "l2":
            u = torch.randn(count, math.prod(shape), generator=gen)
        else:
            u = torch.rand(count, math.prod(shape), generator=gen) * 2.0 - 1.0
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def search(
        self,
        oracle: BudgetedOracle,
        x0: torch.Tensor,
        labels: torch.Tensor,
        owners: torch.Tensor,
        *,
        milestones: tuple[int, ...] = (),
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> BoundarySearch:
        """Find, for every row of ``x0`` (N, *shape), a nearby input whose label differs from ``labels``."""
        self.check_shape(tuple(oracle.input_shape))
        run = _Run(self, oracle, x0, labels, owners, milestones)
        run.initialise()
        t = 0
        for t in range(1, self.max_iter + 1):
            if not run.iterate(t):
                break
            if on_iteration is not None:
                on_iteration(t, int(oracle.ledger.total))
        return BoundarySearch(run.best_adv.reshape(x0.shape), run.found.clone(), run.best_at, t)


class _Run:
    """The mutable state of one search: kept apart from the (immutable) attack object."""

    def __init__(
        self,
        attack: HopSkipJump,
        oracle: BudgetedOracle,
        x0: torch.Tensor,
        labels: torch.Tensor,
        owners: torch.Tensor,
        milestones: tuple[int, ...],
    ) -> None:
        self.a, self.oracle = attack, oracle
        self.shape = tuple(x0.shape[1:])
        self.x0 = x0.reshape(len(x0), math.prod(self.shape)).to(torch.float32)
        self.n, self.d = self.x0.shape
        self.labels, self.owners = labels, owners
        self.lo, self.hi = oracle.bounds
        self.keys = content_keys(self.x0)
        self.stream = KeyedStream(attack.seed)
        self.theta = attack.gamma / (self.d**1.5 if attack.norm == "l2" else self.d**2)
        self.search_theta = self.theta  # binary-search threshold (the guided search tightens it)
        self.adv = self.x0.clone()
        self.dist = torch.full((self.n,), math.inf)
        self.found = torch.zeros(self.n, dtype=torch.bool)
        self.active = torch.ones(self.n, dtype=torch.bool)  # still worth iterating
        self.best_adv, self.best_dist = self.x0.clone(), torch.full((self.n,), math.inf)
        self.milestones = torch.tensor(milestones, dtype=torch.int64)
        self.best_at = torch.full((len(milestones), self.n), math.inf)

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _serve(self, rows: torch.Tensor, cost: int = 1) -> torch.Tensor:
        """The subset of ``rows`` that can afford ``cost`` queries each."""
        return rows[self.oracle.ledger.affordable(cost, self.owners[rows])]

    def _is_adv(self, rows: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Query ``points`` (one per entry of ``rows``); True where the label differs from the original."""
        got = self.oracle.query(points.reshape(len(points), *self.shape), self.owners[rows])
        return got != self.labels[rows]

    def _offer(self, rows: torch.Tensor, points: torch.Tensor) -> None:
        """Keep ``points`` (known adversarial) as the best of ``rows`` where they are closer; update milestones."""
        dist = lp_distance(points - self.x0[rows], self.a.norm)
        better = dist < self.best_dist[rows]
        self.best_dist[rows[better]] = dist[better]
        self.best_adv[rows[better]] = points[better]
        if len(self.milestones):
            used = self.oracle.ledger.used[self.owners]
            within = used[None, :] <= self.milestones[:, None]
            self.best_at = torch.where(within, self.best_dist[None, :], self.best_at)

    # -- phases --------------------------------------------------------------------------------------------
    def initialise(self) -> None:
        self._start_from_noise(torch.arange(self.n))

    def _start_from_noise(self, pending: torch.Tensor) -> None:
        """Random-noise starts for the candidates ``pending`` (none found yet), then blend and binary searches."""
        noise = torch.empty_like(self.x0)
        for r in range(self.a.init_size):
            rows = self._serve(pending[~self.found[pending]])
            if len(rows) == 0:
                break
            cand = self.lo + (self.hi - self.lo) * self._init_noise(rows, r)
            hit = self._is_adv(rows, cand)
            noise[rows[hit]] = cand[hit]
            self.found[rows[hit]] = True
        rows = pending[self.found[pending]]
        self._offer(rows, noise[rows])
        self.adv[rows] = self._blend(rows, noise[rows])
        self._binary_search(rows)

    def _init_noise(self, rows: torch.Tensor, r: int) -> torch.Tensor:
        """Uniform values in [0, 1) for initialisation round ``r``, shape (len(rows), d).

        Even rounds are i.i.d. per pixel, as in the paper. A classifier tends to give all i.i.d. noise images the
        same label, so a candidate of that class would never find a start; odd rounds on images therefore draw
        the noise at a low resolution (1x1, 2x2, 4x4, 8x8 in turn: flat colours and blobs) and upsample it.
        """
        if r % 2 == 0 or len(self.shape) != 3:
            return self.stream.uniform(self.keys[rows], _INIT_STEP + r, self.d)
        c, h, w = self.shape
        side = (1, 2, 4, 8)[(r // 2) % 4]
        lh, lw = min(side, h), min(side, w)
        u = self.stream.uniform(self.keys[rows], _INIT_STEP + r, c * lh * lw).reshape(len(rows), c, lh, lw)
        return F.interpolate(u, size=(h, w), mode="nearest").reshape(len(rows), self.d)

    def _blend(self, rows: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Binary search on the blend (1 - a) x0 + a noise down to tolerance 1e-3 (a = 1 is adversarial)."""
        low, high = torch.zeros(len(rows)), torch.ones(len(rows))
        x0 = self.x0[rows]
        while True:
            open_ = torch.nonzero(high - low > _BLEND_TOL).flatten()
            open_ = open_[self.oracle.ledger.affordable(1, self.owners[rows[open_]])]
            if len(open_) == 0:
                break
            mid = (high[open_] + low[open_]) / 2
            pts = (1 - mid[:, None]) * x0[open_] + mid[:, None] * noise[open_]
            hit = self._is_adv(rows[open_], pts)
            high[open_] = torch.where(hit, mid, high[open_])
            low[open_] = torch.where(hit, low[open_], mid)
            self._offer(rows[open_[hit]], pts[hit])
        return (1 - high[:, None]) * x0 + high[:, None] * noise

    def _project(self, rows: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        x0 = self.x0[rows]
        if self.a.norm == "l2":
            return (1 - alpha[:, None]) * x0 + alpha[:, None] * target
        return torch.minimum(torch.maximum(target, x0 - alpha[:, None]), x0 + alpha[:, None])

    def _l2_threshold(self, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The L2 binary search's stopping width per row, as a share of the segment from the original to ``target``."""
        return torch.full((len(rows),), self.search_theta)

    def _binary_search(self, rows: torch.Tensor, low: torch.Tensor | None = None) -> None:
        """Move ``self.adv[rows]`` (adversarial) towards the originals until within the theta threshold.

        ``low`` (L2 only): per row, a share of the segment from the original already known to keep the label."""
        target = self.adv[rows].clone()
        if self.a.norm == "l2":
            high, thr = torch.ones(len(rows)), self._l2_threshold(rows, target)
        else:
            high = lp_distance(target - self.x0[rows], "linf")
            thr = torch.clamp(high * self.search_theta, max=self.search_theta)
        low = low.clone() if low is not None and self.a.norm == "l2" else torch.zeros(len(rows))
        for _ in range(64):
            open_ = torch.nonzero(high - low > thr).flatten()
            open_ = open_[self.oracle.ledger.affordable(1, self.owners[rows[open_]])]
            if len(open_) == 0:
                break
            mid = (high[open_] + low[open_]) / 2
            pts = self._project(rows[open_], target[open_], mid)
            hit = self._is_adv(rows[open_], pts)
            high[open_] = torch.where(hit, mid, high[open_])
            low[open_] = torch.where(hit, low[open_], mid)
            self._offer(rows[open_[hit]], pts[hit])
        self.adv[rows] = self._project(rows, target, high)
        self.dist[rows] = lp_distance(self.adv[rows] - self.x0[rows], self.a.norm)

    def _reserve(self) -> int:
        """Queries kept back for one step search and one binary search."""
        return 2 + math.ceil(math.log2(1.0 / self.search_theta))

    def _gradient(self, rows: torch.Tensor, counts: torch.Tensor, delta: torch.Tensor, t: int) -> torch.Tensor:
        """Monte-Carlo estimate of the boundary normal at ``adv[rows]`` with baseline subtraction (Eq. 16)."""
        grad, _ = self._estimate(rows, counts, delta, t, None)
        return self._direction(grad)

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The update direction from a raw estimate (R, D): unit length (L2) or its sign (Linf)."""
        if self.a.norm == "linf":
            return torch.sign(grad)
        return grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _estimate(
        self, rows: torch.Tensor, counts: torch.Tensor, delta: torch.Tensor, t: int, prior: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw estimate (R, D) = mean of phi_i u_i minus the baseline, and the sums of <u_i, b>^2 (R, m) over the
        directions b of ``prior`` (R, m, D) (zeros without one): what :mod:`labelleak.attacks.guided` needs to weigh
        prior directions."""

        def probe(part: torch.Tensor, base: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            pert = torch.clamp(base[:, None, :] + delta[part, None, None] * g[None], self.lo, self.hi)
            return pert, (pert - base[:, None, :]) / delta[part, None, None]

        s_phiu, s_u, s_phi, s_up2 = self._sign_sums(rows, counts, t, probe, prior)
        n = counts.to(torch.float32).clamp_min(1)
        mean_phi = s_phi / n
        uniform = mean_phi.abs() == 1.0  # all answers equal: no baseline (as in the reference code)
        return torch.where(uniform[:, None], s_phiu, s_phiu - mean_phi[:, None] * s_u) / n[:, None], s_up2

    def _sign_sums(
        self,
        rows: torch.Tensor,
        counts: torch.Tensor,
        t: int,
        probe: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        prior: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query ``counts`` probes per row and sum phi u, u and phi (and <u, b>^2 per ``prior`` direction b).

        ``probe(part, base, g)`` turns iteration t's shared directions ``g`` (W, D) into the probe points (P, W, D)
        around the boundary points ``base`` (P, D) of the rows ``rows[part]`` and the directions (P, W, D) to sum.
        """
        r = len(rows)
        s_phiu, s_u = torch.zeros(r, self.d), torch.zeros(r, self.d)
        s_phi = torch.zeros(r)
        s_up2 = torch.zeros(r, 0 if prior is None else prior.shape[1])
        # Directions are summed in blocks of a fixed size, and per row the block sums are added in order: a row's
        # sums then follow the same order whichever rows share its batch (a block size that shrank as the batch
        # grew made a shard's scores drift from the whole batch's). Rows are chunked and several blocks go to
        # the oracle in one call to bound memory; blocks are always full, their unused tail masked.
        block = _DIRECTION_BLOCK
        n_blocks = math.ceil(int(counts.max()) / block)
        # a whole number of blocks (a multiple of 16 rows) keeps torch's normal draws prefix-stable
        directions = self.a.directions(t, n_blocks * block, self.shape)
        row_chunk = max(1, self.a.chunk_elements // (block * self.d))
        for top in range(0, r, row_chunk):
            part = torch.arange(top, min(top + row_chunk, r))
            p, base, part_counts = len(part), self.adv[rows[part]], counts[part]
            per_call = max(1, self.a.chunk_elements // (p * block * self.d))
            part_blocks = math.ceil(int(part_counts.max()) / block)
            for b0 in range(0, part_blocks, per_call):
                nb = min(per_call, part_blocks - b0)
                first, width = b0 * block, nb * block
                pert, u = probe(part, base, directions[first : first + width])
                valid = torch.arange(first, first + width)[None, :] < part_counts[:, None]  # (P, width)
                row_of = torch.arange(p)[:, None].expand(p, width)[valid]
                hit = self._is_adv(rows[part[row_of]], pert[valid])
                phi = torch.zeros(p, width)
                phi[valid] = hit.to(torch.float32) * 2 - 1
                # elementwise products and per-block sums (not a batched matmul), for the same reason
                phiu = (phi[:, :, None] * u).reshape(p, nb, block, self.d).sum(2)
                vu = (valid[:, :, None] * u).reshape(p, nb, block, self.d).sum(2)
                up2 = (
                    []
                    if prior is None
                    else [
                        ((u * prior[part, None, j, :]).sum(2) ** 2 * valid).reshape(p, nb, block).sum(2)
                        for j in range(prior.shape[1])
                    ]
                )
                for k in range(nb):
                    s_phiu[part] += phiu[:, k]
                    s_u[part] += vu[:, k]
                    for j, sq in enumerate(up2):
                        s_up2[part, j] += sq[:, k]
                s_phi[part] += phi.sum(1)  # sums of +-1 and 0: exact in any order
        return s_phiu, s_u, s_phi, s_up2

    def _step(self, rows: torch.Tensor, update: torch.Tensor, t: int, eps: torch.Tensor | None = None) -> None:
        """Geometric step search from xi = ``eps`` (default dist / sqrt(t)), halving until still adversarial."""
        eps = self.dist[rows] / math.sqrt(t) if eps is None else eps.clone()
        pending = torch.ones(len(rows), dtype=torch.bool)
        new = self.adv[rows].clone()
        for _ in range(_MAX_HALVINGS):
            open_ = torch.nonzero(pending).flatten()
            open_ = open_[self.oracle.ledger.affordable(1, self.owners[rows[open_]])]
            if len(open_) == 0:
                break
            pts = torch.clamp(self.adv[rows[open_]] + eps[open_, None] * update[open_], self.lo, self.hi)
            hit = self._is_adv(rows[open_], pts)
            new[open_[hit]] = pts[hit]
            pending[open_[hit]] = False
            eps[open_[~hit]] /= 2
        self.adv[rows] = new

    def iterate(self, t: int) -> bool:
        """One HSJA iteration for all active candidates; False when none is left."""
        rows = torch.nonzero(self.found & self.active).flatten()
        wanted = min(int(self.a.init_eval * math.sqrt(t)), self.a.max_eval)
        counts = self.oracle.ledger.affordable_counts(self.owners[rows], wanted, reserve=self._reserve())
        self.active[rows[counts == 0]] = False
        rows, counts = rows[counts > 0], counts[counts > 0]
        if len(rows) == 0:
            return False
        if t == 1:
            delta = torch.full((len(rows),), 0.1 * (self.hi - self.lo))
        else:
            scale = math.sqrt(self.d) if self.a.norm == "l2" else self.d
            delta = (scale * self.theta * self.dist[rows]).clamp_min(1e-12)
        update = self._gradient(rows, counts, delta, t)
        self._step(rows, update, t)
        self._binary_search(rows)
        return True
