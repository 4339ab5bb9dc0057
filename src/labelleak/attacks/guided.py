"""Guided boundary search: HopSkipJump (or QEBA) with several starting points and a transfer prior.

Plain HopSkipJump starts from random noise and converges to *a* face of the decision region, not always the
nearest one; on a multinomial model a large share of candidates ends on a farther face. The adversary has its own
data and a shadow model, and :class:`GuidedSearch` uses both:

* **Multi-start.** Each candidate gets up to S starting points (the adversary's own samples of other classes,
  nearest first, and points beyond the shadow model's nearest class faces; see :mod:`labelleak.attacks._surrogate`).
  Each is verified by one query and refined by a coarse binary search on the segment from the candidate
  (``start_tol``), all starts of all candidates in the same batches; HopSkipJump then continues from the nearest
  verified boundary point, its binary search starting from the bracket the coarse one left. A candidate without a
  verified start falls back to HopSkipJump's noise start. The shadow model's face lies nearer than the target's
  along the shadow's direction more often than not (on CIFAR-10, most shadow starts at twice the shadow's
  distance keep the target's label), so a start marked ``grow`` that keeps the label is pushed out along its
  direction, twice as far each time, up to ``start_doublings`` times (one query each): the direction, which is
  what the shadow knows, is kept, and the scale is found with the target.
  Budget rule (measured in ``bench/bench_distance.py``): at most ``S * (1 + ceil(log2(1 / start_tol)))`` queries,
  plus ``start_doublings`` per growable start, go to ranking the starts, the rest to the search from the best one.
* **Transfer prior** (as in the prior-guided random-gradient-free estimators of Cheng et al., NeurIPS 2019, and
  the biased sampling of Brunner et al., ICCV 2019). At each boundary point the shadow model's gradient ``p``
  (unit) is weighed against the sign answers HopSkipJump already collects: ``alpha = sqrt(pi/2) * mean(phi_i
  <u_i, p>) / sqrt(mean(<u_i, p>^2))`` estimates the cosine between ``p`` and the target's boundary normal (exact
  for Gaussian directions and a locally flat boundary), and the update is ``alpha p + sqrt(1 - alpha^2) c e``,
  ``e`` the unit part of HopSkipJump's estimate orthogonal to ``p`` and ``c`` its expected cosine with the true
  orthogonal part. Where ``alpha`` is not significantly positive (z-score below ``min_z``) the prior disagrees
  with the target and the plain HopSkipJump estimate is used instead. The prior costs no queries.
* **Complement sampling** (``refine``). Isotropic sign answers add a fixed amount of precision per query to the
  direction estimate, so at 100 features 2,000 queries leave HopSkipJump about 5% above the distance. Once a row's
  estimate is trusted (within 45 degrees of the normal), its next directions are drawn orthogonal to it and
  offset along it, so that every answer is about the remaining error; the tangent of the angle then shrinks by a
  constant factor per iteration (:meth:`_GuidedRun._refined_gradient`). A row whose answers contradict its
  estimate goes back to isotropic sampling.

Scores stay independent of batch order: starts are chosen per candidate, the budget of several starts of one
candidate is shared by rank (never exceeding it), and the shadow model is always evaluated on rows sorted by
their content key, so the batch it sees does not depend on the candidates' order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from labelleak.attacks.hsja import BoundarySearch, HopSkipJump, _Run, lp_distance
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle
from labelleak.rng import in_key_order

# (points (R, *shape), their original labels (R,)) -> direction (R, *shape) towards the adversarial side
PriorFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_REFINE_BELOW = 1.0  # complement sampling only for a direction trusted within 45 degrees of the normal
_TAN_FLOOR = 1e-6  # a refined angle's tangent never reaches 0 (kappa would vanish)


def can_refine(engine: HopSkipJump) -> bool:
    """Whether complement sampling applies to ``engine``: it assumes HopSkipJump's isotropic Gaussian directions
    (not QEBA's subspace) and the L2 norm."""
    return engine.norm == "l2" and type(engine).directions is HopSkipJump.directions


def orthonormal(directions: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt over the m directions of each row of (R, m, D); a direction that is (nearly) zero or inside the
    span of the earlier ones becomes a zero row."""
    basis = directions.clone()
    for j in range(basis.shape[1]):
        for i in range(j):
            basis[:, j] -= (basis[:, j] * basis[:, i]).sum(1, keepdim=True) * basis[:, i]
        norm = basis[:, j].norm(dim=1, keepdim=True)
        scale = directions[:, j].norm(dim=1, keepdim=True).clamp_min(1e-30)
        basis[:, j] = torch.where(norm > 1e-3 * scale, basis[:, j] / norm.clamp_min(1e-30), 0.0)
    return basis


def mix_prior(
    v: torch.Tensor, basis: torch.Tensor, n: torch.Tensor, s_up2: torch.Tensor, *, min_z: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Combine HopSkipJump's raw estimate ``v`` (R, D) with prior directions ``basis`` (R, m, D), orthonormal.

    ``n`` (R,) counts the sign answers behind ``v``; ``s_up2`` (R, m) sums ``<u_i, b_j>^2`` over their directions.
    Each prior direction whose estimated cosine with the boundary normal is significantly positive (z-score at
    least ``min_z``) enters with that cosine; the rest of the unit budget goes to ``v``'s part orthogonal to them,
    weighted by its expected cosine. Rows where no prior direction qualifies keep ``v`` (plain HopSkipJump).
    Returns the (unnormalised) direction, whether a prior was used (R,) and the cosines (R, m).
    """
    n = n.to(v.dtype).clamp_min(1)
    real = basis.abs().sum(2) > 0  # (R, m)
    mean_up2 = (s_up2 / n[:, None]).clamp_min(1e-30)
    along = (v[:, None, :] * basis).sum(2)  # mean of phi_i <u_i, b_j>, baseline subtracted
    alpha = (math.sqrt(math.pi / 2) * along / mean_up2.sqrt()).clamp(-1.0, 1.0) * real
    keep = real & (alpha * (2 * n[:, None] / math.pi).sqrt() >= min_z)
    a = alpha * keep
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1.0)  # at most unit length
    rest = (1 - (a**2).sum(1)).clamp_min(0)
    ortho = v - ((along * keep)[:, :, None] * basis).sum(1)
    e = ortho / ortho.norm(dim=1, keepdim=True).clamp_min(1e-30)
    per_direction = (mean_up2 * real).sum(1) / real.sum(1).clamp_min(1)  # E<u, b>^2 of one direction, about 1/D
    signal = (2 / math.pi) * per_direction * rest  # energy of the orthogonal part of v
    c = (signal / (signal + 1 / n)).sqrt()
    mixed = (a[:, :, None] * basis).sum(1) + (rest.sqrt() * c)[:, None] * e
    used = keep.any(1)
    return torch.where(used[:, None], mixed, v), used, alpha


def group_rank(groups: torch.Tensor) -> torch.Tensor:
    """Position of each entry within its run of equal values in the sorted (N,) tensor ``groups``."""
    first = torch.searchsorted(groups, groups)
    return torch.arange(len(groups)) - first


class GuidedSearch:
    """Multi-start and prior-guided search around an ``engine`` (a :class:`HopSkipJump` or QEBA).

    Args:
        engine: supplies the norm, iterations, sample counts, directions and seed.
        start_tol: relative width (on the segment candidate-start) at which a start's coarse binary search stops.
        min_z: z-score of a prior direction's agreement below which it is left out (none left: plain estimate).
        memory: also use the previous iteration's estimate as a prior direction (it is tested like the shadow's).
        tighten: the binary searches stop ``tighten`` times closer to the boundary than HopSkipJump's threshold
            theta (while the probe radius delta keeps HopSkipJump's value): at HopSkipJump's own threshold the
            boundary point can lie as far inside the adversarial side as a typical probe reaches, so most sign
            answers are +1 and carry little information; 16 costs 4 more queries per binary search.
        refine: complement sampling once a row's direction is trusted (L2 HopSkipJump only; ignored otherwise).
        start_doublings: how often a growable start that keeps the target's label is pushed twice as far out
            along its direction (one query each; 0: never).
    """

    def __init__(
        self,
        engine: HopSkipJump,
        *,
        start_tol: float = 1 / 64,
        min_z: float = 2.0,
        memory: bool = True,
        tighten: float = 16.0,
        refine: bool = False,
        start_doublings: int = 0,
    ) -> None:
        if not 0 < start_tol < 1:
            raise InvalidInputError(f"start_tol: expected a number between 0 and 1, got {start_tol!r}")
        if not tighten >= 1:
            raise InvalidInputError(f"tighten: expected a number of at least 1, got {tighten!r}")
        self.engine, self.start_tol, self.min_z, self.memory = engine, start_tol, min_z, memory
        if isinstance(start_doublings, bool) or not isinstance(start_doublings, int) or start_doublings < 0:
            raise InvalidInputError(f"start_doublings: expected a non-negative integer, got {start_doublings!r}")
        self.tighten, self.start_doublings = tighten, start_doublings
        self.refine = refine and can_refine(engine)

    def search(
        self,
        oracle: BudgetedOracle,
        x0: torch.Tensor,
        labels: torch.Tensor,
        owners: torch.Tensor,
        *,
        starts: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        grow: torch.Tensor | None = None,
        prior: PriorFn | None = None,
        milestones: tuple[int, ...] = (),
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> BoundarySearch:
        """As :meth:`HopSkipJump.search`, from ``starts`` (N, S, *shape) where ``valid`` (N, S) and with ``prior``;
        ``grow`` (N, S) marks the starts that may be pushed out (``start_doublings``)."""
        self.engine.check_shape(tuple(oracle.input_shape))
        if grow is not None and (valid is None or grow.shape != valid.shape):
            raise InvalidInputError("grow: expected one flag per start, the shape of valid")
        run = _GuidedRun(self, oracle, x0, labels, owners, milestones, starts, valid, prior, grow)
        run.initialise()
        t = 0
        for t in range(1, self.engine.max_iter + 1):
            if not run.iterate(t):
                break
            if on_iteration is not None:
                on_iteration(t, int(oracle.ledger.total))
        return BoundarySearch(run.best_adv.reshape(x0.shape), run.found.clone(), run.best_at, t, run.stats())


class _GuidedRun(_Run):
    def __init__(
        self,
        search: GuidedSearch,
        oracle: BudgetedOracle,
        x0: torch.Tensor,
        labels: torch.Tensor,
        owners: torch.Tensor,
        milestones: tuple[int, ...],
        starts: torch.Tensor | None,
        valid: torch.Tensor | None,
        prior: PriorFn | None,
        grow: torch.Tensor | None = None,
    ) -> None:
        super().__init__(search.engine, oracle, x0, labels, owners, milestones)
        self.g, self.prior = search, prior
        self.starts = None if starts is None else starts.reshape(self.n, starts.shape[1], self.d).to(torch.float32)
        if self.starts is not None and valid is None:
            valid = torch.ones(self.starts.shape[:2], dtype=torch.bool)
        self.valid = valid
        self.grow = grow
        self.started = torch.zeros(self.n, dtype=torch.bool)
        self.search_theta = self.theta / search.tighten
        self.confidence = torch.full((self.n,), math.nan)
        self.last = torch.zeros(self.n, self.d)  # the previous iteration's estimate: a prior for the next one
        self.tan = torch.full((self.n,), math.nan)  # estimated tan of the angle between ``last`` and the normal
        self.n_refine = 0
        self.n_steps = self.n_prior = 0
        self.alpha_sum = 0.0

    def stats(self) -> dict[str, float]:
        """Counts and sums over candidates (so that shards add up; divide by ``guided_steps`` for shares/means):
        candidates started from a point, isotropic (prior-mixed) gradient steps, those that used a prior, the sum
        of prior cosines, and the complement-sampled steps (``refine_steps``, not among ``guided_steps``)."""
        out: dict[str, float] = {"started": int(self.started.sum())}
        if self.prior is not None or self.g.memory:
            out["guided_steps"], out["prior_steps"] = self.n_steps, self.n_prior
        if self.g.refine:
            out["refine_steps"] = self.n_refine
        if self.prior is not None:
            out["prior_alpha_sum"] = self.alpha_sum
        return out

    # -- multi-start ---------------------------------------------------------------------------------------
    def initialise(self) -> None:
        if self.starts is not None and self.valid is not None and self.starts.shape[1] > 0:
            self._start_from_points(self.starts, self.valid)
        self._start_from_noise(torch.nonzero(~self.found).flatten())

    def _afford(self, cand: torch.Tensor) -> torch.Tensor:
        """Mask over entries ``cand`` (sorted candidate rows, repeats allowed) that can pay one query each."""
        owners = self.owners[cand]
        ledger = self.oracle.ledger
        return ledger.affordable(1, owners) & (group_rank(cand) < ledger.remaining(owners))

    def _offer_many(self, cand: torch.Tensor, points: torch.Tensor) -> None:
        """Offer adversarial ``points`` of sorted rows ``cand`` (repeats allowed): the nearest per row."""
        if len(cand) == 0:
            return
        dist = lp_distance(points - self.x0[cand], self.a.norm)
        least = torch.full((self.n,), math.inf).scatter_reduce(0, cand, dist, "amin")
        pick = torch.nonzero(dist == least[cand]).flatten()
        first = torch.ones(len(pick), dtype=torch.bool)
        first[1:] = cand[pick[1:]] != cand[pick[:-1]]
        pick = pick[first]
        self._offer(cand[pick], points[pick])

    def _start_from_points(self, starts: torch.Tensor, valid: torch.Tensor) -> None:
        """Verify each start (pushing growable ones out while they keep the label), binary-search its segment
        coarsely, keep the nearest boundary point per row.

        Branch and bound: a start whose known non-adversarial part of the segment already reaches as far as the
        row's nearest verified point cannot end nearer, so it is neither pushed further nor searched further. With
        enough budget the start kept is the one the full ranking would keep (up to ties); only queries that could
        not change it are saved (under a tight budget they go to the other starts).
        """
        cand, slot = torch.nonzero(valid, as_tuple=True)  # sorted by candidate, then by start
        first_try = starts[cand, slot]
        target = first_try.clone()
        growable = torch.zeros(len(cand), dtype=torch.bool) if self.grow is None else self.grow[cand, slot]
        crossed = torch.zeros(len(cand), dtype=torch.bool)
        low = torch.zeros(len(cand))  # share of each segment known to keep the label
        pending = torch.arange(len(cand))  # entries (sorted by candidate) still keeping the label
        for k in range(1 + self.g.start_doublings):
            if k > 0:
                pending = pending[growable[pending]]
                base = self.x0[cand[pending]]
                free = base + 2.0**k * (first_try[pending] - base)
                pushed = torch.clamp(free, self.lo, self.hi)
                moved = (pushed != target[pending]).any(1)  # a start clamped still by the box is not asked again
                known = self._pushed_share(pushed, free)
                pending, pushed, known = pending[moved], pushed[moved], known[moved]
                # a clamped push bends the segment, so nothing on it is known and it is never pruned here
                alive = self._can_win(cand[pending], pushed, known)
                pending, pushed, known = pending[alive], pushed[alive], known[alive]
                target[pending] = pushed
                low[pending] = known
            asked = pending[self._afford(cand[pending])]
            if len(asked) == 0:
                break
            hit = self._is_adv(cand[asked], target[asked])
            crossed[asked[hit]] = True
            self._offer_many(cand[asked[hit]], target[asked[hit]])
            pending = asked[~hit]
        good = torch.nonzero(crossed).flatten()
        cand, target, low = cand[good], target[good], low[good]
        high = torch.ones(len(cand))
        while True:
            open_ = torch.nonzero(high - low > self.g.start_tol).flatten()
            open_ = open_[self._can_win(cand[open_], target[open_], low[open_])]
            open_ = open_[self._afford(cand[open_])]
            if len(open_) == 0:
                break
            mid = (high[open_] + low[open_]) / 2
            pts = (1 - mid[:, None]) * self.x0[cand[open_]] + mid[:, None] * target[open_]
            adv = self._is_adv(cand[open_], pts)
            high[open_] = torch.where(adv, mid, high[open_])
            low[open_] = torch.where(adv, low[open_], mid)
            self._offer_many(cand[open_[adv]], pts[adv])
        # continue from each row's nearest verified boundary point
        ends = (1 - high[:, None]) * self.x0[cand] + high[:, None] * target
        dist = lp_distance(ends - self.x0[cand], self.a.norm)
        least = torch.full((self.n,), math.inf).scatter_reduce(0, cand, dist, "amin")
        pick = torch.nonzero(dist == least[cand]).flatten()
        rows = cand[pick]
        first = torch.ones(len(pick), dtype=torch.bool)
        first[1:] = rows[1:] != rows[:-1]
        rows, pick = rows[first], pick[first]
        self.adv[rows] = ends[pick]
        self.found[rows] = True
        self.started[rows] = True
        self._binary_search(rows, low[pick] / high[pick])  # low/high of the segment to the start kept the label

    def _pushed_share(self, pushed: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """The share of each pushed start's segment known to keep the label: where the box did not clamp the push
        (nor, being convex, the one before), the point asked last lies halfway along it; elsewhere nothing."""
        return torch.where((pushed == free).all(1), 0.5, 0.0)

    def _can_win(self, cand: torch.Tensor, target: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        """Mask over entries: the ``share`` of the segment from the candidate to ``target`` known to keep the label
        is still shorter than the row's nearest verified adversarial point (otherwise the entry cannot win)."""
        known = share * lp_distance(target - self.x0[cand], self.a.norm)
        return known < self.best_dist[cand]

    # -- transfer prior ------------------------------------------------------------------------------------
    def _prior_at(self, rows: torch.Tensor) -> torch.Tensor:
        """Prior directions (R, D) at ``adv[rows]`` from the shadow model, evaluated in content-key order."""
        assert self.prior is not None
        prior = self.prior

        def at(sub: torch.Tensor) -> torch.Tensor:
            pts = self.adv[sub].reshape(len(sub), *self.shape)
            return prior(pts, self.labels[sub]).reshape(len(sub), self.d).to(torch.float32)

        return in_key_order(self.keys[rows], at, rows)

    def _gradient(self, rows: torch.Tensor, counts: torch.Tensor, delta: torch.Tensor, t: int) -> torch.Tensor:
        if not self.g.refine:
            return self._mixed_gradient(rows, counts, delta, t)
        trusted = torch.isfinite(self.tan[rows])
        out = torch.empty(len(rows), self.d)
        for mask, fn in ((~trusted, self._mixed_gradient), (trusted, self._refined_gradient)):
            if mask.any():
                out[mask] = fn(rows[mask], counts[mask], delta[mask], t)
        return out

    def _mixed_gradient(self, rows: torch.Tensor, counts: torch.Tensor, delta: torch.Tensor, t: int) -> torch.Tensor:
        directions = []
        if self.prior is not None:
            directions.append(self._prior_at(rows))
        if self.g.memory:
            directions.append(self.last[rows])
        if not directions:
            return super()._gradient(rows, counts, delta, t)
        basis = orthonormal(torch.stack(directions, 1))
        v, s_up2 = self._estimate(rows, counts, delta, t, basis)
        mixed, used, alpha = mix_prior(v, basis, counts, s_up2, min_z=self.g.min_z)
        self.last[rows] = mixed / mixed.norm(dim=1, keepdim=True).clamp_min(1e-30)
        # with a prior, |mixed| is the expected cosine between the estimate and the boundary normal
        self.confidence[rows] = torch.where(used, mixed.norm(dim=1).clamp(0.0, 0.999), math.nan)
        if self.g.refine:
            # expected cosine: the prior-weighted one, or that of a plain estimate from n sign answers
            signal = 2 * counts.to(torch.float32) / math.pi
            cos = torch.where(used, mixed.norm(dim=1).clamp(0.0, 0.999), (signal / (signal + self.d)).sqrt())
            tan = (1 - cos**2).sqrt() / cos.clamp_min(1e-6)
            self.tan[rows] = torch.where(tan < _REFINE_BELOW, tan, math.nan)
        self.n_steps += len(rows)
        self.n_prior += int(used.sum())
        if self.prior is not None:
            self.alpha_sum += float(alpha[:, 0].sum())
        return self._direction(mixed)

    def _refined_gradient(self, rows: torch.Tensor, counts: torch.Tensor, delta: torch.Tensor, t: int) -> torch.Tensor:
        """Correct a trusted direction ``n`` (``last``) with sign answers from its orthogonal complement only.

        An isotropic probe's answer is dominated by its component along ``n`` once ``n`` is close to the normal,
        so it says little about the remaining error; probes ``u`` orthogonal to ``n``, offset by ``kappa n``,
        answer ``sign(kappa cos(theta) + <u, e> sin(theta))`` (``e`` the unit error direction, theta the angle):
        the share of +1 gives tan(theta) (``kappa`` is set so that about 84% are +1 at the expected angle) and
        ``mean(phi u)`` gives ``e``. The correction ``tan(theta) c e`` (``c``: the expected cosine of the estimate
        of ``e``) shrinks the angle's tangent by ``sqrt(1 - c^2)`` per step, a constant factor where isotropic
        sampling only adds a constant amount of precision. A row whose answers contradict ``n`` (+1 not in the
        majority, or an angle beyond 45 degrees) goes back to the prior-mixed estimate.
        """
        nh, tan = self.last[rows], self.tan[rows]
        kappa = tan / math.sqrt(self.d)

        def probe(part: torch.Tensor, base: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n_p = nh[part]
            u = g[None] - (g[None] * n_p[:, None, :]).sum(2, keepdim=True) * n_p[:, None, :]
            step = delta[part, None, None] * (u + kappa[part, None, None] * n_p[:, None, :])
            pert = torch.clamp(base[:, None, :] + step, self.lo, self.hi)
            u = (pert - base[:, None, :]) / delta[part, None, None]
            return pert, u - (u * n_p[:, None, :]).sum(2, keepdim=True) * n_p[:, None, :]  # the box may clip

        s_phiu, s_u, s_phi, _ = self._sign_sums(rows, counts, t, probe)
        n = counts.to(torch.float32).clamp_min(1)
        mean_phi = s_phi / n
        share = ((1 + mean_phi) / 2).clamp(0.5 / n, 1 - 0.5 / n)
        a = torch.special.ndtri(share)  # kappa cos(theta) / (sin(theta) / sqrt(d)), in probe units
        estimate = tan / a.clamp_min(1e-6)
        v = (s_phiu - mean_phi[:, None] * s_u) / n[:, None]
        e = v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)
        signal = 4 * torch.exp(-(a**2)) / (2 * math.pi) / self.d  # |E[phi u]|^2 = (2 pdf(a))^2 / d
        noise = (1 - mean_phi**2).clamp_min(1 / n) / n  # the baseline-subtracted mean's variance, summed
        c = (signal / (signal + noise)).sqrt()
        new = nh + (estimate * c)[:, None] * e
        new = new / new.norm(dim=1, keepdim=True).clamp_min(1e-30)
        trusted = (mean_phi * n.sqrt() > self.g.min_z) & (estimate < _REFINE_BELOW)
        self.last[rows] = torch.where(trusted[:, None], new, nh)
        self.tan[rows] = torch.where(trusted, (estimate * (1 - c**2).sqrt()).clamp_min(_TAN_FLOOR), math.nan)
        self.confidence[rows] = torch.where(trusted, 1 / (1 + self.tan[rows] ** 2).sqrt(), math.nan)
        self.n_refine += int(trusted.sum())
        # a contradicted direction (+1 not the majority) is not stepped along; one that is only too far off is
        return torch.where((mean_phi > 0)[:, None], self.last[rows], 0.0)

    def _l2_threshold(self, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """For refined rows, a fixed share of the distance rather than of the segment to ``target``.

        A refined row's steps can be ten times the distance long; stopping at ``search_theta`` of that segment
        would leave the point ten times deeper on the adversarial side, which the refined estimate reads as a
        smaller angle.
        """
        thr = super()._l2_threshold(rows, target)
        if not self.g.refine:
            return thr
        length = lp_distance(target - self.x0[rows], "l2").clamp_min(1e-30)
        share = torch.where(torch.isfinite(self.tan[rows]), (self.dist[rows] / length).clamp(max=1.0), 1.0)
        return thr * torch.nan_to_num(share, nan=1.0, posinf=1.0)

    def _step(self, rows: torch.Tensor, update: torch.Tensor, t: int, eps: torch.Tensor | None = None) -> None:
        """HopSkipJump's step, lengthened where the direction is trusted.

        On a flat boundary at distance D, a boundary point whose perturbation makes angle theta with the normal,
        stepped by eps along an estimate at angle phi from it and projected back along the ray from the original,
        lands at tan(theta') with E tan^2(theta') = (D^2 tan^2 theta + eps^2 sin^2 phi) / (D + eps cos phi)^2,
        smallest at eps = D tan^2(theta) cos(phi) / sin^2(phi). cos(phi) is the prior-weighted estimate's expected
        cosine; theta is read off the estimate itself. The step is the larger of that and HopSkipJump's
        dist / sqrt(t), at most 10 dist.
        """
        hsja = self.dist[rows] / math.sqrt(t)
        cos_phi = self.confidence[rows]
        pert = self.adv[rows] - self.x0[rows]
        cos_theta = ((pert * update).sum(1) / (pert.norm(dim=1) * update.norm(dim=1)).clamp_min(1e-30)).clamp(1e-3, 1)
        tan2 = 1 / cos_theta**2 - 1
        depth = self.dist[rows] * cos_theta  # D, the distance to the estimated face
        best = depth * tan2 * cos_phi / (1 - cos_phi**2)
        eps = torch.where(torch.isfinite(best), torch.minimum(torch.maximum(best, hsja), 10 * self.dist[rows]), hsja)
        super()._step(rows, update, t, eps)
