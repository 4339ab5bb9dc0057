"""Boundary-LiRA over several label-only signals at once: one per-example likelihood ratio (issue 34, item 4).

A candidate's boundary distance is one noisy reading of how far its model has moved towards it. Two other
label-only readings have noise of their own, so together they separate members that one alone cannot:

* ``distance``: the signed boundary distance of :mod:`labelleak.attacks.boundary_lira` (its search, HopSkipJump
  or boundary-guided's), stabilised the same way;
* ``augmentation``: how many of the candidate's one-pixel shifts (left, right, up, down; images only) the model
  labels ``y``, as the augmentation attack counts them (Choquette-Choo et al., ICML 2021), read as the log-odds
  ``log((c + 1/2) / (n - c + 1/2))``;
* ``path``: the signed distance to the boundary along the fixed segment from the candidate to the nearest
  adversary sample of another class, by log-scale bisection (the path of :mod:`labelleak.attacks.dhattack`; the
  endpoint is chosen by the adversary's own labels, so it costs no setup query, and is classified with the
  search; the candidate's own label is the distance search's first answer, not asked again), stabilised like the
  distance. A candidate without an adversary sample on the side its path needs has no path: length 0 on every
  model, no query spent, status ``failed`` (counted in ``extras["path_without_endpoint"]``), scored by the other
  signals.

Every signal is measured with the same deterministic procedure on the target and on each of the K reference
models (all at once, as in boundary-LiRA; the reference models' answers cost the target nothing), and the V
values are scored by one multivariate likelihood ratio (:func:`~labelleak.attacks._likelihood.multivariate_scores`:
online, Gaussians with means per candidate and one covariance per side pooled over candidates; offline, the
one-sided test of a shift of every signal towards "member"). Every signal points the same way: members sit
farther from the boundary on both paths and keep their label under shifts.

Budget: each candidate's allowance is split before the first query: ``4`` queries for the shifts,
``path_queries`` for the path, the rest for the search, each held to its share; so no candidate ever passes its
budget, and one cut short in any share is marked ``budget_hit``. An allowance that cannot pay the shares and two
search queries asks nothing: every candidate is ``budget_hit`` (``extras["unpaid"]`` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from labelleak.attacks._likelihood import multivariate_scores
from labelleak.attacks._reference_search import served_references
from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import RawScores, ShadowData, Status
from labelleak.attacks.boundary_lira import BoundaryLiRA, Transform, signed_distances, stabilised
from labelleak.attacks.dhattack import fixed_path_distance, model_classifier, path_endpoints, reference_path_distances
from labelleak.attacks.hsja import Norm
from labelleak.attacks.robustness import translate
from labelleak.errors import InvalidInputError
from labelleak.oracle.budget import BudgetedOracle, BudgetShare

SIGNALS = ("augmentation", "path")
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def resolve_signals(signals: Sequence[str] | str, input_shape: Sequence[int]) -> tuple[str, ...]:
    """The signals beside the distance (``"auto"``: both for (C, H, W) images, the path alone otherwise); one
    line naming the problem for an unknown signal or shifts of an input that is not an image."""
    image = len(input_shape) == 3
    if isinstance(signals, str):
        if signals != "auto":
            raise InvalidInputError(f"signals: expected 'auto' or a list of {', '.join(SIGNALS)}, got {signals!r}")
        return SIGNALS if image else ("path",)
    chosen = tuple(signals)
    if not chosen or any(s not in SIGNALS for s in chosen) or len(set(chosen)) != len(chosen):
        raise InvalidInputError(f"signals: expected distinct names among {', '.join(SIGNALS)}, got {list(chosen)}")
    if "augmentation" in chosen and not image:
        raise InvalidInputError(f"signals: augmentation needs (C, H, W) images, got inputs of shape {input_shape}")
    return chosen


def shifted_copies(x: torch.Tensor) -> torch.Tensor:
    """The one-pixel shifts of every row of ``x`` (N, C, H, W), copy-major: (len(SHIFTS) * N, C, H, W)."""
    return torch.cat([translate(x, dx, dy) for dx, dy in SHIFTS])


def agreement_logit(kept: np.ndarray, n: int) -> np.ndarray:
    """Log-odds of ``kept`` of ``n`` shifts labelled y, with half a count added to each side (finite at 0 and n)."""
    kept = np.asarray(kept, np.float64)
    return np.log((kept + 0.5) / (n - kept + 0.5))


class CombinedLiRA(BoundaryLiRA):
    """Boundary-LiRA over the distance, the shifts' agreement and the fixed-path distance (module docstring).

    Args (beyond :class:`~labelleak.attacks.boundary_lira.BoundaryLiRA`'s):
        signals: ``"auto"`` or names among ``augmentation`` and ``path``, measured beside the distance.
        path_queries: target queries of the path per candidate: the endpoint, then bisections.
        min_ratio: the path bisection's lower end, as a fraction of the segment.
    """

    def __init__(
        self,
        *,
        online: bool = True,
        n_reference: int = 8,
        norm: Norm = "l2",
        max_iter: int = 50,
        max_eval: int = 10_000,
        init_eval: int = 100,
        init_size: int = 100,
        gamma: float = 1.0,
        transform: Transform = "log",
        reference_size: int | None = None,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
        search: Literal["hsja", "guided"] = "guided",
        signals: Sequence[str] | str = "auto",
        path_queries: int = 16,
        min_ratio: float = 1e-4,
    ) -> None:
        super().__init__(
            online=online,
            n_reference=n_reference,
            norm=norm,
            max_iter=max_iter,
            max_eval=max_eval,
            init_eval=init_eval,
            init_size=init_size,
            gamma=gamma,
            transform=transform,
            reference_size=reference_size,
            shadow_recipe=shadow_recipe,
            seed=seed,
            search=search,
        )
        self.signals, self.path_queries, self.min_ratio = signals, path_queries, min_ratio
        self.name = "boundary-lira-combined" + ("" if online else "-offline")

    def _shares(self, signals: tuple[str, ...]) -> dict[str, int]:
        """Queries per candidate each extra signal takes before the search gets the rest."""
        if isinstance(self.path_queries, bool) or not isinstance(self.path_queries, int) or self.path_queries < 3:
            raise InvalidInputError(
                f"{self.name}: path_queries must be an integer of at least 3, got {self.path_queries!r}"
            )
        if not 0 < self.min_ratio < 1:
            raise InvalidInputError(f"{self.name}: min_ratio must lie in (0, 1), got {self.min_ratio}")
        return {s: len(SHIFTS) if s == "augmentation" else self.path_queries for s in signals}

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        self._check_settings()
        signals = resolve_signals(self.signals, tuple(oracle.input_shape))
        shares = self._shares(signals)
        extra = sum(shares.values())
        allowance, per_sample = oracle.ledger.allowance(), oracle.ledger.max_per_sample
        if allowance is not None and allowance < extra + 2:  # not even a label and one search step beside them
            n = len(x)
            return RawScores(
                scores=np.zeros(n),
                status=np.full(n, Status.BUDGET_HIT, dtype=np.int8),
                extras={"signals": ["distance", *signals], "unpaid": f"{allowance} queries per candidate cannot pay "
                        f"the search (at least 2) beside {extra} for {' and '.join(signals)}"},
            )  # fmt: skip
        cap = None if allowance is None else allowance - extra  # the search's share, on the target and references
        natural = None if per_sample is None else per_sample - extra
        engine = self.engine(tuple(oracle.input_shape))
        search, guidance = self._guided(engine, oracle, shadow, progress)
        refs = self._reference_models(oracle, x, y, shadow, progress=progress)
        searched = BudgetShare(oracle, cap, natural=natural)
        d_target, status = signed_distances(engine, searched, x, y, search)
        misclassified = int((status == Status.MISCLASSIFIED).sum())  # before a budget hit overwrites the status
        d_ref, ref_status, ref_queries = self._reference_searches(
            engine, refs.models, oracle, x, y, cap, progress, search, guidance
        )
        served = served_references(self.shadow_recipe, refs.models, oracle, self.seed)
        shape = tuple(oracle.input_shape)
        values = {"distance": self._stabilised(d_target, d_ref)}
        measured: dict[str, np.ndarray | int] = {}
        if "augmentation" in signals:
            kept, kept_ref, short = self._augmentation(oracle, served, x, y, shape)
            values["augmentation"] = (agreement_logit(kept, len(SHIFTS)), agreement_logit(kept_ref, len(SHIFTS)))
            measured["shifts_kept"] = kept
            status[short] = Status.BUDGET_HIT
        if "path" in signals:
            # the search's first query labelled x: d > 0 where that label is y (NaN: never served, nothing to pay)
            p_target, p_ref, short, endless = self._path(oracle, served, x, y, shadow, shape, d_target > 0)
            values["path"] = self._stabilised(p_target, p_ref)
            measured["path_distance"] = p_target
            measured["path_without_endpoint"] = int(endless.sum())
            status[endless & (status == Status.OK)] = Status.FAILED
            status[short] = Status.BUDGET_HIT
        t_all = np.stack([v[0] for v in values.values()], 1)  # (N, V)
        ref_all = np.stack([v[1] for v in values.values()], 2)  # (K, N, V)
        scores = multivariate_scores(t_all, ref_all, refs.inside, online=self.online)
        status[searched.ledger.cut_short().numpy()] = Status.BUDGET_HIT
        scores[oracle.ledger.used.numpy() == 0] = 0.0  # never queried: no evidence either way
        return RawScores(
            scores=scores,
            status=status,
            extras={
                "n_reference": refs.k,
                "online": self.online,
                "signals": ["distance", *signals],
                "signal_values": t_all,
                "signed_distance": d_target,
                "reference_distances": d_ref,
                "reference_size": refs.size,
                "in_models_per_candidate": float(refs.inside.sum(0).mean()),
                "misclassified": misclassified,
                "reference_failed": int((ref_status == Status.FAILED).sum()),
                "reference_queries": int(ref_queries),
                "queries_per_signal": {"distance": cap, **shares},
                "search": self.search,
                **measured,
            },
        )

    def _stabilised(self, d: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target and reference values through :func:`stabilised`, one scale from the reference values."""
        t, ref_t, _ = stabilised(d, ref, self.transform)
        return t, ref_t

    def _augmentation(
        self, oracle: BudgetedOracle, served: list, x: torch.Tensor, y: torch.Tensor, shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shifts labelled y per candidate on the target (N,) and on every reference model (K, N), and the mask
        of candidates whose budget could not pay all of them (they count none)."""
        n, copies = len(x), shifted_copies(x)
        paid = oracle.ledger.affordable(len(SHIFTS))
        idx = torch.nonzero(paid).flatten()
        kept = np.zeros(n)
        if len(idx):
            rows = torch.cat([idx + j * n for j in range(len(SHIFTS))])
            owners = idx.repeat(len(SHIFTS))
            labels = oracle.query(copies[rows], owners).reshape(len(SHIFTS), len(idx))
            kept[idx.numpy()] = (labels == y[idx][None, :]).sum(0).numpy()
        owners_all = torch.arange(n).repeat(len(SHIFTS))
        kept_ref = np.stack(
            [
                (model_classifier(m, shape)(copies, owners_all).reshape(len(SHIFTS), n) == y[None, :]).sum(0).numpy()
                for m in served
            ]
        ).astype(np.float64)
        return kept, kept_ref, ~paid.numpy()

    def _path(
        self,
        oracle: BudgetedOracle,
        served: list,
        x: torch.Tensor,
        y: torch.Tensor,
        shadow: ShadowData,
        shape: tuple[int, ...],
        correct: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Signed fixed-path distances on the target (N,) and on every reference model (K, N), the mask of
        candidates whose budget cut the path short, and the mask of those without a shadow sample on the side
        their path needs (their path has length 0 everywhere: no query is spent on it).

        ``correct`` (N,): the target labelled x as y (the distance search asked), so the path does not ask again
        and its share pays the endpoint and ``path_queries - 1`` bisections."""
        flat = x.reshape(len(x), -1).to(torch.float32)
        pool_x = np.concatenate([shadow.x_train, shadow.x_test])
        pool = torch.as_tensor(pool_x, dtype=torch.float32).reshape(len(pool_x), -1)
        pool_y = torch.as_tensor(np.concatenate([shadow.y_train, shadow.y_test]))
        end_out, has_out = path_endpoints(flat, y, pool, pool_y)
        end_in, has_in = path_endpoints(flat, y, pool, pool_y, same=True)
        known = torch.as_tensor(correct)
        steps = self.path_queries - 1  # the endpoint first; the label at x is known
        target = fixed_path_distance(
            lambda pts, rows: oracle.query(pts.reshape(len(pts), *shape), rows),
            flat,
            y,
            end_out,
            end_in,
            steps=steps,
            min_ratio=self.min_ratio,
            has_end=(has_out, has_in),
            correct=known,
            afford=lambda rows: oracle.ledger.affordable(1, rows),  # at most path_queries: its share is left
        )
        ref = reference_path_distances(
            served,
            flat,
            y,
            end_out,
            end_in,
            shape=shape,
            steps=steps,
            min_ratio=self.min_ratio,
            has_end=(has_out, has_in),
        )
        endless = ~torch.where(known, has_out, has_in).numpy()
        return target.distance.numpy(), ref, ~target.complete.numpy(), endless
