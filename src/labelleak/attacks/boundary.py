"""Boundary-distance membership attack (Li & Zhang, CCS 2021, Sec. 5): members sit farther from the boundary.

A decision-based attack (HopSkipJump or QEBA) searches, for each correctly classified candidate, the closest
input with a different label; the score is the size of that perturbation. Candidates are reported, never
dropped: those the target misclassifies get score 0 (they are already across the boundary); those for which
no adversarial start point is found get the largest finite score (the diameter of the input box in the score
norm), status ``FAILED``. Under a total cap every candidate gets the same allowance; a search that spends all of
it while its per-sample budget would have let it go on is marked ``BUDGET_HIT`` (its score is the best so far).

With ``starts``, ``shadow_starts`` or ``prior="shadow"`` the search is guided by the adversary's own data and shadow
model (:mod:`labelleak.attacks.guided`): several verified starting points and the shadow model's gradient as a
prior for the gradient-direction estimate. ``boundary-guided`` is that attack with all three on.

``extras`` carries the perturbation size in every norm (``distances``) and each candidate's best score within
each query milestone (``milestone_scores``), so one run yields the whole AUC-vs-queries curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, TypedDict

import numpy as np
import torch
from torch import nn

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks._surrogate import margin_prior, nearest_other_class, shadow_face_starts
from labelleak.attacks.base import Attack, RawScores, ShadowData, Status
from labelleak.attacks.capabilities import Capabilities, QueryCost
from labelleak.attacks.guided import GuidedSearch, PriorFn, can_refine
from labelleak.attacks.hsja import BoundarySearch, HopSkipJump, Norm, box_diameter, lp_distance
from labelleak.attacks.qeba import QEBA
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle
from labelleak.progress import progress_bar

DEFAULT_MILESTONES = (100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
# boundary-guided: what it adds to a plain search, also the search of boundary-lira-guided and dhattack-guided
GUIDED: dict[str, Any] = dict(
    method="auto", norm="l2", starts=4, shadow_starts="auto", start_doublings=5, prior="shadow", refine=True
)
ScoreNorm = Literal["l0", "l1", "l2", "linf"]


class _SearchParams(TypedDict):
    """What HopSkipJump and QEBA share (QEBA adds ``ratio``)."""

    norm: Norm
    max_iter: int
    max_eval: int
    init_eval: int
    init_size: int
    gamma: float
    seed: int


class BoundaryAttack(Attack):
    """Score = distance to the decision boundary found by a label-only attack (HSJA or QEBA).

    Args:
        method: ``"hsja"``, ``"qeba"`` or ``"auto"``: QEBA on images whose low-resolution grid (H / ``ratio`` x
            W / ``ratio``) has at least 8 x 8 cells, HopSkipJump otherwise (tabular inputs, small images).
        norm: the attack's norm (``"l2"`` or ``"linf"``).
        score_norm: the norm of the score (default: the attack's own).
        max_iter: HopSkipJump iterations (paper default).
        max_eval: HopSkipJump's cap on gradient-estimation queries per iteration (paper default).
        init_eval: HopSkipJump's gradient-estimation queries at iteration 1, growing as sqrt(t) (paper default).
        init_size: HopSkipJump's random trials for an adversarial starting point (paper default).
        gamma: HopSkipJump's binary-search threshold parameter (paper default).
        ratio: QEBA's downsampling factor.
        milestones: query counts per candidate at which the best distance so far is recorded.
        seed: seeds the random directions (per candidate, independent of batch order) and the shadow model.
        starts: the adversary's own samples of other classes tried as starting points, nearest first (0: none).
        shadow_starts: points beyond the shadow model's nearest class faces tried as starting points (0: none);
            ``"auto"``: the nearest face only on images (where ``method="auto"`` picks QEBA), the three nearest
            otherwise. Measured in ``bench/bench_distance.py``: on CIFAR-10 a CNN shadow's farther faces verify
            nearer along their ray for some candidates, yet the search from them ends farther within 200 queries
            (AUC 0.914 with three, 0.923 with one, 1,000 + 1,000 candidates, 200 queries); on linear targets the
            shadow is nearly exact and the third face is needed (90% within 5% at 100 features / 10 classes).
        prior: ``"shadow"`` biases the gradient-direction estimate with the shadow model's input gradient.
        start_tol: relative precision of each start's coarse binary search before the best one is kept.
        start_doublings: how often a shadow start that keeps the target's label is pushed twice as far out along
            its direction (one query each) before it is given up.
        refine: once the direction estimate is trusted (within 45 degrees of the boundary normal), sample the
            next estimate's directions orthogonal to it (see :mod:`labelleak.attacks.guided`): L2 HopSkipJump
            only, needs no adversary's data; QEBA and Linf searches ignore it.
        shadow_recipe: how the shadow model of ``shadow_starts`` and ``prior`` is trained (on the shadow-train part
            with its own labels: no target queries).
    """

    shardable = True  # randomness keyed by each candidate's content; a guided search's shadow model by the seed
    gives_distances = True
    shadow_reason = "starts, shadow_starts and prior='shadow' need the adversary's data"
    query_cost = QueryCost(None, all_at_once=False)  # one label, then a search up to the budget

    def __init__(
        self,
        *,
        method: Literal["hsja", "qeba", "auto"] = "hsja",
        norm: Norm = "l2",
        score_norm: ScoreNorm | None = None,
        max_iter: int = 50,
        max_eval: int = 10_000,
        init_eval: int = 100,
        init_size: int = 100,
        gamma: float = 1.0,
        ratio: int = 4,
        milestones: tuple[int, ...] = DEFAULT_MILESTONES,
        seed: int = 0,
        starts: int = 0,
        shadow_starts: int | Literal["auto"] = 0,
        prior: Literal["none", "shadow"] = "none",
        start_tol: float = 1 / 64,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        refine: bool = False,
        start_doublings: int = 0,
    ) -> None:
        self.method, self.norm, self.score_norm = method, norm, score_norm
        self.max_iter, self.max_eval, self.init_eval = max_iter, max_eval, init_eval
        self.init_size, self.gamma, self.ratio = init_size, gamma, ratio
        self.milestones, self.seed = tuple(milestones), seed
        self.starts, self.shadow_starts, self.prior = starts, shadow_starts, prior
        self.start_tol, self.shadow_recipe, self.refine = start_tol, shadow_recipe, refine
        self.start_doublings = start_doublings
        self.name = f"boundary-{method}" + ("-linf" if norm == "linf" else "")

    def capabilities(self) -> Capabilities:
        """Shadow data is needed only by a search guided by the adversary's data (``starts``, ``shadow_starts``,
        ``prior="shadow"``)."""
        return replace(super().capabilities(), needs_shadow=self.uses_shadow)

    def _rich_image(self, shape: tuple[int, ...] | None) -> bool:
        """An image large enough that its low-resolution grid (H / ``ratio`` x W / ``ratio``) has 8 x 8 cells."""
        return shape is not None and len(shape) == 3 and min(shape[1:]) // max(self.ratio, 1) >= 8

    def resolved_method(self, shape: tuple[int, ...] | None = None) -> str:
        """``method``, with ``"auto"`` decided for inputs of ``shape``: QEBA's subspace needs an image large enough
        that its low-resolution grid still has 8 x 8 cells (CIFAR-10 at ``ratio`` 4: yes; digits: no)."""
        if self.method != "auto":
            return self.method
        return "qeba" if self._rich_image(shape) else "hsja"

    def resolved_shadow_starts(self, shape: tuple[int, ...] | None = None) -> int:
        """``shadow_starts``, with ``"auto"`` decided for inputs of ``shape`` (see the class docstring)."""
        if self.shadow_starts == "auto":
            return 1 if self._rich_image(shape) else 3
        return self.shadow_starts

    def engine(self, shape: tuple[int, ...] | None = None) -> HopSkipJump:
        """The search engine for inputs of ``shape`` (needed only to decide ``method="auto"``)."""
        common: _SearchParams = dict(
            norm=self.norm,
            max_iter=self.max_iter,
            max_eval=self.max_eval,
            init_eval=self.init_eval,
            init_size=self.init_size,
            gamma=self.gamma,
            seed=self.seed,
        )
        method = self.resolved_method(shape)
        if method == "hsja":
            return HopSkipJump(**common)
        if method == "qeba":
            return QEBA(ratio=self.ratio, **common)
        raise InvalidInputError(f"method: expected 'hsja', 'qeba' or 'auto', got {self.method!r}")

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        score_norm = self.score_norm or self.norm
        if score_norm not in ("l0", "l1", "l2", "linf"):
            raise InvalidInputError(f"score_norm: expected l0, l1, l2 or linf, got {score_norm!r}")
        shape = tuple(oracle.input_shape)
        engine = self.engine(shape)
        n = len(x)
        served = oracle.ledger.affordable(1)
        idx = torch.nonzero(served).flatten()
        correct = torch.zeros(n, dtype=torch.bool)
        correct[idx] = oracle.query(x[idx], idx) == y[idx]
        rows = torch.nonzero(correct).flatten()
        with progress_bar(f"{self.name}", engine.max_iter, enabled=progress) as bar:

            def tick(t: int, total: int) -> None:
                if bar is not None:
                    bar.update(
                        bar.task_ids[0],
                        completed=t,
                        info=f"{len(rows)} candidates, {total / max(n, 1):.0f} queries/sample",
                    )

            found = self._search(engine, oracle, x[rows], y[rows], rows, shadow, tick, progress)

        flat = x.reshape(n, -1)
        delta = torch.zeros_like(flat)
        delta[rows] = found.adv.reshape(len(rows), flat.shape[1]) - flat[rows]
        ceiling = box_diameter(oracle.bounds, flat.shape[1], score_norm)
        ok = torch.zeros(n, dtype=torch.bool)
        ok[rows[found.found]] = True
        distances = {
            nm: torch.where(ok, lp_distance(delta, nm), torch.full((n,), math.nan)).numpy()
            for nm in ("l0", "l1", "l2", "linf")
        }
        scores = np.where(ok.numpy(), distances[score_norm], 0.0)
        failed = (correct & ~ok).numpy()
        scores[failed] = ceiling
        status = np.full(n, Status.OK, dtype=np.int8)
        status[~correct.numpy()] = Status.MISCLASSIFIED
        status[failed] = Status.FAILED
        # a search that spent the whole allowance a total cap had lowered was cut short, found or not
        status[(correct & oracle.ledger.cut_short()).numpy()] = Status.BUDGET_HIT
        status[~served.numpy()] = Status.BUDGET_HIT

        milestone_scores = {}
        if score_norm == self.norm:  # milestones track the attack's own norm
            for m, best in zip(self.milestones, found.best_at):
                s = np.zeros(n)
                s[rows.numpy()] = np.where(torch.isfinite(best).numpy(), best.numpy(), ceiling)
                milestone_scores[int(m)] = s
        return RawScores(
            scores=scores,
            status=status,
            extras={
                "distances": distances,
                "milestone_scores": milestone_scores,
                "score_norm": score_norm,
                "score_ceiling": ceiling,
                "iterations": found.iterations,
                "method": self.resolved_method(shape),  # what method="auto" resolved to
                "shadow_starts": self.resolved_shadow_starts(shape),
                **found.stats,
            },
        )

    def guided(self, engine: HopSkipJump) -> bool:
        """Whether the search around ``engine`` is guided: with the adversary's data, or refined (L2 HopSkipJump)."""
        return self.uses_shadow or (self.refine and can_refine(engine))

    @property
    def uses_shadow(self) -> bool:
        return self.starts > 0 or self.shadow_starts != 0 or self.prior == "shadow"

    def _check_guidance(self) -> None:
        for name, value in (
            ("starts", self.starts),
            ("shadow_starts", self.shadow_starts),
            ("start_doublings", self.start_doublings),
        ):
            if name == "shadow_starts" and value == "auto":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                extra = " or 'auto'" if name == "shadow_starts" else ""
                raise InvalidInputError(f"{name}: expected a non-negative integer{extra}, got {value!r}")
        if self.prior not in ("none", "shadow"):
            raise InvalidInputError(f"prior: expected 'none' or 'shadow', got {self.prior!r}")
        if not isinstance(self.refine, bool):
            raise InvalidInputError(f"refine: expected true or false, got {self.refine!r}")

    def _search(
        self,
        engine: HopSkipJump,
        oracle: BudgetedOracle,
        x: torch.Tensor,
        y: torch.Tensor,
        rows: torch.Tensor,
        shadow: ShadowData | None,
        tick: Callable[[int, int], None],
        progress: bool,
    ) -> BoundarySearch:
        """The plain search, or the guided one when the attack uses the adversary's data or shadow model."""
        self._check_guidance()
        if not self.guided(engine):
            return engine.search(oracle, x, y, rows, milestones=self.milestones, on_iteration=tick)
        model = self.guidance_model(oracle, shadow, progress=progress)
        return self.guided_search(
            engine, oracle, x, y, rows, shadow=shadow, model=model, milestones=self.milestones, on_iteration=tick
        )

    def guidance_model(
        self, oracle: BudgetedOracle, shadow: ShadowData | None, *, progress: bool = False
    ) -> nn.Module | None:
        """The shadow model behind the shadow starts and the prior (``None`` when neither is on), trained once so
        that every search it guides (boundary-LiRA's target and reference searches) sees the same one."""
        self._check_guidance()
        if shadow is None and self.uses_shadow:
            raise InvalidInputError(
                f"{self.name}: starts, shadow_starts and prior='shadow' need the adversary's data "
                "(shadow=ShadowData(...))"
            )
        if shadow is None or (self.resolved_shadow_starts(tuple(oracle.input_shape)) == 0 and self.prior != "shadow"):
            return None
        return self.shadow_recipe.train(
            shadow.x_train,
            shadow.y_train,
            input_shape=oracle.input_shape,
            n_classes=oracle.n_classes,
            seed=self.seed,
            description=f"shadow ({self.name})",
            progress=progress,
        )

    def guided_search(
        self,
        engine: HopSkipJump,
        oracle: BudgetedOracle,
        x: torch.Tensor,
        labels: torch.Tensor,
        owners: torch.Tensor,
        *,
        shadow: ShadowData | None,
        model: nn.Module | None,
        milestones: tuple[int, ...] = (),
        on_iteration: Callable[[int, int], None] | None = None,
    ) -> BoundarySearch:
        """The guided search of ``x`` away from ``labels`` on ``oracle``: starts from the adversary's samples of
        other classes and beyond ``model``'s nearest faces, and ``model``'s gradient as the prior (see
        :meth:`guidance_model`)."""
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.starts > 0 and shadow is not None:
            pool_x = torch.as_tensor(np.concatenate([shadow.x_train, shadow.x_test]), dtype=torch.float32)
            pool_y = torch.as_tensor(np.concatenate([shadow.y_train, shadow.y_test]), dtype=torch.int64)
            parts.append(nearest_other_class(x, labels, pool_x, pool_y, self.starts))
        prior: PriorFn | None = None
        n_faces = self.resolved_shadow_starts(tuple(oracle.input_shape)) if model is not None else 0
        if n_faces > 0 and model is not None:
            parts.insert(0, shadow_face_starts(model, x, labels, n_faces, bounds=oracle.bounds))
        if self.prior == "shadow" and model is not None:
            prior = margin_prior(model)
        starts = torch.cat([p for p, _ in parts], dim=1) if parts else None
        valid = torch.cat([v for _, v in parts], dim=1) if parts else None
        grow = None
        if valid is not None and n_faces > 0:
            grow = torch.zeros_like(valid)
            grow[:, :n_faces] = True  # the shadow's starts come first; own samples are not pushed
        return GuidedSearch(
            engine,
            start_tol=self.start_tol,
            memory=getattr(self, "_memory", True),
            tighten=getattr(self, "_tighten", 16.0),
            refine=self.refine,
            start_doublings=self.start_doublings,
        ).search(
            oracle,
            x,
            labels,
            owners,
            starts=starts,
            valid=valid,
            grow=grow,
            prior=prior,
            milestones=milestones,
            on_iteration=on_iteration,
        )
