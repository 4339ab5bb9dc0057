"""Boundary-LiRA: LiRA's per-example likelihood ratio over the label-only boundary distance, online and offline.

A global threshold on the boundary distance (``boundary-hsja``) cannot tell a member from a sample that sits far
from the boundary whatever a model is trained on. Boundary-LiRA calibrates each candidate against K reference
models (:mod:`labelleak.attacks._reference`, shared with LiRA, each trained on a random set of the target's size:
online, each candidate is IN for exactly half of them; offline, OUT for all):

1. the candidate's signed boundary distance d is measured on the target and, with the **same** HopSkipJump
   search, settings, seed and per-candidate budget, on every reference model in process (all K at once, over
   K x N rows, :mod:`labelleak.attacks._reference_search`; those queries are reported apart in
   ``extras["reference_queries"]`` and cost the target nothing);
2. d is stabilised: t = sign(d) log(1 + |d| / s), with s the median nonzero reference distance (one scale for
   all candidates, so t is log d up to a constant for d >> s, and continuous through 0);
3. Gaussians are fitted per candidate to the IN and the OUT values of t (means per candidate; variance pooled
   over candidates, ``variance="global"``, per candidate, ``"per-example"``, shrunk between the two, ``"shrunk"``,
   or chosen on held-out reference models, ``"auto"``: :mod:`labelleak.attacks._likelihood`); score =
   log N(t; mu_in, s_in^2) - log N(t; mu_out, s_out^2); offline, the one-sided z = (t - mu_out) / s_out.

Signed distance: a candidate the model gets right has d > 0, its distance to the nearest other label. One it
gets wrong has d < 0: minus its distance out of the wrongly predicted region (the search starts from the
predicted label), a lower bound on the distance back to its true label's region that is exact for two classes.
So misclassified candidates keep distinct, comparable scores (reference models that misclassify them say how
unusual that is) instead of one tied constant; the target's count is ``extras["misclassified"]`` and their
status ``MISCLASSIFIED``. A candidate whose search finds no start point gets the box diameter (signed), status
``FAILED``; on reference models likewise.

Why log (measured, /tmp script, not a benchmark): 3-class synthetic data with 6 features and 30% label noise,
an MLP target on 60 of 120 candidates, 16 offline reference MLPs, HSJA at 300 queries per candidate. Over the 60
candidates every reference model classifies correctly, the mean per-candidate Shapiro-Wilk W of the 16 OUT
distances was 0.911 raw, 0.911 after sqrt and 0.915 after log, with 25%, 23% and 22% of candidates rejected at
the 5% level: log is the most Gaussian, by a small margin. Online with K = 8 it also ranked best (AUC 0.649 and
TPR 0.27 at 5% FPR; sqrt 0.625 / 0.27; raw 0.608 / 0.12; boundary-hsja's AUC 0.535). ``variance="global"`` is
the default: per-example variances fitted on about 4 values each fell to AUC 0.555 and TPR 0.07 (LiRA's paper
also pools the variance for small K).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from labelleak._version import __version__
from labelleak.attacks import _reference_search
from labelleak.attacks._likelihood import (
    Variance,
    check_variance,
    choose_variance,
    likelihood_scores,
    multivariate_scores,
)
from labelleak.attacks._reference import ReferenceModelAttack
from labelleak.attacks._reference_search import ReferenceSearches, search_references, served_references
from labelleak.attacks._shadow import ShadowRecipe, _digest
from labelleak.attacks._views import apply_view, resolve_views
from labelleak.attacks.base import RawScores, ShadowData, Status
from labelleak.attacks.boundary import GUIDED, BoundaryAttack, box_diameter
from labelleak.attacks.capabilities import QueryCost, ThreatModel
from labelleak.attacks.hsja import BoundarySearch, HopSkipJump, Norm, lp_distance
from labelleak.errors import InvalidInputError
from labelleak.models.store import model_key
from labelleak.oracle.budget import BudgetedOracle, BudgetShare
from labelleak.progress import progress_bar

Transform = Literal["log", "sqrt", "none"]
# (oracle, points (R, *shape), labels to leave (R,), owners (R,)) -> what the search found
Search = Callable[[BudgetedOracle, torch.Tensor, torch.Tensor, torch.Tensor], BoundarySearch]


def signed_distances(
    engine: HopSkipJump,
    oracle: BudgetedOracle,
    x: torch.Tensor,
    y: torch.Tensor,
    search: Search | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed boundary distance (N,) of each candidate on ``oracle`` and its status (N,) int8.

    One label query per candidate, then one batched search (``search``, else ``engine``'s own) from every served
    candidate away from the label the oracle gave it: d > 0 where that label is ``y``, d < 0 where it is not; no
    start point: +-box diameter. A candidate that cannot pay its label query is not searched (``BUDGET_HIT``).
    """
    n = len(x)
    served = oracle.ledger.affordable(1)
    idx = torch.nonzero(served).flatten()
    pred = torch.full((n,), -1, dtype=torch.int64)
    flat = x.reshape(n, -1)
    dist = torch.full((n,), math.nan, dtype=torch.float64)
    found_any = torch.zeros(0, dtype=torch.bool)
    if len(idx):
        pred[idx] = oracle.query(x[idx], idx)
        found = (search or engine.search)(oracle, x[idx], pred[idx], idx)
        moved = lp_distance(found.adv.reshape(len(idx), -1) - flat[idx], engine.norm).double()
        ceiling = box_diameter(oracle.bounds, flat.shape[1], engine.norm)
        dist[idx] = torch.where(found.found, moved, torch.full_like(moved, ceiling))
        found_any = found.found
    wrong = served & (pred != y)
    d = torch.where(wrong, -dist, dist).numpy()
    status = np.full(n, Status.OK, dtype=np.int8)
    status[wrong.numpy()] = Status.MISCLASSIFIED
    failed = torch.zeros(n, dtype=torch.bool)
    failed[idx] = ~found_any
    status[failed.numpy()] = Status.FAILED
    # a search that spent the whole allowance a total cap had lowered was cut short
    status[(served & ~wrong & oracle.ledger.cut_short()).numpy()] = Status.BUDGET_HIT
    status[~served.numpy()] = Status.BUDGET_HIT
    return d, status


def stabilise(d: np.ndarray, transform: Transform, scale: float) -> np.ndarray:
    """Variance-stabilising transform of signed distances: sign(d) f(|d| / scale), f = log1p, sqrt or identity."""
    a = np.abs(d) / scale
    if transform == "log":
        return np.sign(d) * np.log1p(a)
    if transform == "sqrt":
        return np.sign(d) * np.sqrt(a)
    if transform == "none":
        return np.sign(d) * a
    raise InvalidInputError(f"transform: expected log, sqrt or none, got {transform!r}")


def stabilised(d: np.ndarray, ref: np.ndarray, transform: Transform) -> tuple[np.ndarray, np.ndarray, float]:
    """Target values ``d`` (N,) and reference values ``ref`` (K, N) through :func:`stabilise`, with one scale for
    both: the median nonzero reference value (1 when there is none); and that scale."""
    positive = np.abs(ref[np.isfinite(ref) & (ref != 0)])
    scale = float(np.median(positive)) if len(positive) else 1.0
    return stabilise(d, transform, scale), stabilise(np.nan_to_num(ref), transform, scale), scale


def _search_code(engine: HopSkipJump) -> str:
    """Digest of the source of the search: the engine's classes' modules and this one. A cached reference search
    is then reused only by the code that made it (the package version alone does not change between commits)."""
    modules = {c.__module__ for c in type(engine).__mro__ if c.__module__.startswith("labelleak")}
    modules |= {__name__, _reference_search.__name__, "labelleak.attacks.guided", "labelleak.attacks._surrogate"}
    modules |= {"labelleak.attacks.boundary"}  # the guided search's starts and prior
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(inspect.getsource(sys.modules[name]).encode())
    return digest.hexdigest()


def _weights(model: nn.Module) -> str:
    """Digest of a model's weights (its state dict, names and bytes)."""
    weights = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        weights.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return weights.hexdigest()


def _load_search(path: Path | None) -> tuple[np.ndarray, np.ndarray, int] | None:
    """A cached reference search (distances, statuses, queries), or ``None`` when absent, torn or foreign."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            return saved["d"], saved["status"], int(saved["queries"])
    except (OSError, KeyError, ValueError):
        return None  # searched again and overwritten


def _save_search(path: Path | None, d: np.ndarray, status: np.ndarray, spent: int) -> None:
    """Write one reference search atomically (a reader never sees half a file)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, d=d, status=status, queries=np.int64(spent))
    os.replace(tmp, path)


class CachedReferenceSearches:
    """The reference searches of an attack that measures boundary distances on in-process reference models
    (boundary-LiRA, dhattack-guided): all K at once, each model's finished search kept in the recipe's cache
    (keyed by its weights, the candidates, the search and its code), and the guided search with its key."""

    name: str
    shadow_recipe: ShadowRecipe
    seed: int
    search: str

    def guide(self) -> BoundaryAttack:
        """boundary-guided as this attack runs it (its engine, shadow model and guided search)."""
        raise NotImplementedError

    def _search_path(
        self,
        engine: HopSkipJump,
        model: nn.Module,
        oracle: BudgetedOracle,
        x: torch.Tensor,
        y: torch.Tensor,
        cap: int | None,
        guidance: str | None = None,
    ) -> Path | None:
        """Where the recipe's cache keeps one reference model's search (``None``: no cache): a reference search
        costs as much as the target's, and an interrupted run would otherwise redo every finished one (only target
        queries are journaled)."""
        if self.shadow_recipe.cache_dir is None:
            return None
        key = model_key(
            role="reference-search",
            version=__version__,
            model=_weights(model),
            x=_digest(x),
            y=_digest(y),
            engine={k: v for k, v in vars(engine).items()},
            code=_search_code(engine),
            cap=cap,
            bounds=list(oracle.bounds),
            # the guided search: its settings and the shadow model that guides it
            **({"guidance": guidance} if guidance is not None else {}),
            # label randomisation leaves the weights as they are: its scale keys the searches apart
            **({"label_noise": self.shadow_recipe.defense} if self.shadow_recipe.randomises_labels() else {}),
        )
        return Path(self.shadow_recipe.cache_dir) / "reference-searches" / f"{key}.npz"

    def _reference_searches(
        self,
        engine: HopSkipJump,
        models: list[nn.Module],
        oracle: BudgetedOracle,
        x: torch.Tensor,
        y: torch.Tensor,
        cap: int | None,
        progress: bool,
        search: Search | None = None,
        guidance: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Signed distances (K, N), statuses (K, N) and the query count of every reference model's search: those
        the cache holds are read, the others searched all at once (:mod:`labelleak.attacks._reference_search`)."""
        paths = [self._search_path(engine, m, oracle, x, y, cap, guidance) for m in models]
        served = served_references(self.shadow_recipe, models, oracle, self.seed)  # labels as the target serves
        found = [_load_search(p) for p in paths]
        todo = [k for k, hit in enumerate(found) if hit is None]
        with progress_bar(f"{self.name}: reference searches", len(models), enabled=progress) as bar:

            def finished(group: range, part: ReferenceSearches) -> None:
                for j, k in enumerate(todo[group.start : group.stop]):  # group: positions in ``todo``
                    found[k] = (part.distance[j], part.status[j], int(part.queries[j]))
                    _save_search(paths[k], part.distance[j], part.status[j], int(part.queries[j]))
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=len(group))

            if bar is not None:
                bar.update(bar.task_ids[0], advance=len(models) - len(todo))
            if todo:
                search_references(
                    lambda routed, xs, ys: signed_distances(engine, routed, xs, ys, search),
                    [served[k] for k in todo],
                    x,
                    y,
                    input_shape=oracle.input_shape,
                    n_classes=oracle.n_classes,
                    bounds=oracle.bounds,
                    cap=cap,
                    on_group=finished,
                )
        done = [hit for hit in found if hit is not None]
        return np.stack([d for d, _, _ in done]), np.stack([s for _, s, _ in done]), sum(q for _, _, q in done)

    def _guided(
        self, engine: HopSkipJump, oracle: BudgetedOracle, shadow: ShadowData, progress: bool
    ) -> tuple[Search | None, str | None]:
        """The guided search (``None`` for plain HopSkipJump) and the digest that keys its cached reference
        searches: the guide's settings and its shadow model's weights."""
        if self.search != "guided":
            return None, None
        guide = self.guide()
        model = guide.guidance_model(oracle, shadow, progress=progress)

        def search(o: BudgetedOracle, xs: torch.Tensor, labels: torch.Tensor, owners: torch.Tensor) -> BoundarySearch:
            return guide.guided_search(engine, o, xs, labels, owners, shadow=shadow, model=model)

        settings = {k: repr(v) for k, v in sorted(vars(guide).items()) if k != "shadow_recipe"}  # keyed apart
        digest = hashlib.sha256(repr(settings).encode())
        if model is not None:
            digest.update(_weights(model).encode())
        return search, digest.hexdigest()


class BoundaryLiRA(ReferenceModelAttack, CachedReferenceSearches):
    """Label-only LiRA over the HopSkipJump boundary distance (see the module docstring).

    Args:
        online: candidates are IN for exactly half of the reference models, K even (else offline: OUT for all).
        n_reference: reference models K (the audit's ``lira_models``).
        norm: the search's norm, as in ``boundary-hsja``.
        max_iter: HopSkipJump iterations; the call's per-candidate budget caps the search on the target and on
            every reference model alike.
        max_eval: most gradient-estimation queries per iteration.
        init_eval: gradient-estimation queries of the first iteration.
        init_size: random draws tried for a starting point.
        gamma: HopSkipJump's binary-search tolerance factor.
        transform: ``"log"`` (default, see above), ``"sqrt"`` or ``"none"``.
        variance: ``"global"`` (default), ``"per-example"``, ``"shrunk"`` (per-example shrunk toward the pooled
            variance) or ``"auto"`` (the one under which held-out reference models are most likely;
            :mod:`labelleak.attacks._likelihood`).
        reference_size: rows each reference model trains on (the target's; ``None``: half the shadow data).
        shadow_recipe: how reference models are trained; seed: their training sets and seeds, and the search's.
        search: ``"hsja"`` (default), or ``"guided"``: boundary-guided's search (QEBA's subspace on images large
            enough for it, HopSkipJump otherwise; starts from the adversary's samples of other classes and beyond
            its shadow model's nearest faces, that model's gradient as a prior, complement sampling;
            :mod:`labelleak.attacks.guided`), the same search with the same shadow model on the target and on
            every reference model.
        views: augmented views measured beside the candidate (``"auto"``, or names of
            :data:`labelleak.attacks._views.VIEWS`): each view's distance is searched with an even share of the
            candidate's budget, on the target and on every reference model, and the views are scored by one
            multivariate likelihood ratio (:func:`~labelleak.attacks._likelihood.multivariate_scores`; the
            variance must then be ``"global"``).
    """

    threat_model = ThreatModel.LABEL_ONLY
    needs_shadow = True
    query_cost = QueryCost(None, all_at_once=False)  # one label, then a search up to the budget

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
        variance: Variance = "global",
        reference_size: int | None = None,
        shadow_recipe: ShadowRecipe = ShadowRecipe(),
        seed: int = 0,
        search: Literal["hsja", "guided"] = "hsja",
        views: Sequence[str] | str = (),
    ) -> None:
        self.reference_size = reference_size
        self.online, self.n_reference, self.norm = online, n_reference, norm
        self.max_iter, self.max_eval, self.init_eval = max_iter, max_eval, init_eval
        self.init_size, self.gamma = init_size, gamma
        self.transform, self.variance = transform, variance
        self.shadow_recipe, self.seed = shadow_recipe, seed
        self.search, self.views = search, views
        self.name = "boundary-lira" + ("-guided" if search == "guided" else "") + ("-views" if views else "")
        self.name += "" if online else "-offline"

    def _check_settings(self) -> None:
        """One line naming a transform or search this attack does not know."""
        if self.transform not in ("log", "sqrt", "none"):
            raise InvalidInputError(f"transform: expected log, sqrt or none, got {self.transform!r}")
        if self.search not in ("hsja", "guided"):
            raise InvalidInputError(f"search: expected 'hsja' or 'guided', got {self.search!r}")

    def guide(self) -> BoundaryAttack:
        """boundary-guided with this attack's search settings, seed and shadow recipe: its engine, shadow model
        and guided search are the ones ``search="guided"`` runs."""
        return BoundaryAttack(
            **{**GUIDED, "norm": self.norm},
            max_iter=self.max_iter,
            max_eval=self.max_eval,
            init_eval=self.init_eval,
            init_size=self.init_size,
            gamma=self.gamma,
            seed=self.seed,
            shadow_recipe=self.shadow_recipe,
        )

    def engine(self, shape: tuple[int, ...] | None = None) -> HopSkipJump:
        """The search engine (guided: QEBA or HopSkipJump as ``method="auto"`` decides for inputs of ``shape``)."""
        if self.search == "guided":
            return self.guide().engine(shape)
        return HopSkipJump(
            norm=self.norm,
            max_iter=self.max_iter,
            max_eval=self.max_eval,
            init_eval=self.init_eval,
            init_size=self.init_size,
            gamma=self.gamma,
            seed=self.seed,
        )

    def _run(
        self, oracle: BudgetedOracle, x: torch.Tensor, y: torch.Tensor, *, shadow: ShadowData | None, progress: bool
    ) -> RawScores:
        assert shadow is not None
        self._check_settings()
        check_variance(self.variance)
        views = resolve_views(self.views, tuple(oracle.input_shape))
        if views and self.variance != "global":
            raise InvalidInputError(f"variance: views fit one covariance pooled over candidates, got {self.variance!r}")
        engine = self.engine(tuple(oracle.input_shape))
        search, guidance = self._guided(engine, oracle, shadow, progress)
        refs = self._reference_models(oracle, x, y, shadow, progress=progress)
        allowance = oracle.ledger.allowance()  # the target's budget, total cap included
        # each view (the candidate first) gets an even share, on the target and on every reference model
        cap = allowance if not views or allowance is None else allowance // (1 + len(views))
        per_sample = oracle.ledger.max_per_sample  # the share without a total cap, to tell who it cut short
        natural = None if per_sample is None else per_sample // (1 + len(views))
        measured = []
        for view in ("identity", *views):
            xv = apply_view(view, x)
            asked = oracle if not views else BudgetShare(oracle, cap, natural=natural)
            d_view, status_view = signed_distances(engine, asked, xv, y, search)
            ref_view = self._reference_searches(engine, refs.models, oracle, xv, y, cap, progress, search, guidance)
            measured.append((d_view, status_view, *ref_view))
        d_target, status, d_ref, ref_status, _ = measured[0]
        ref_queries = sum(m[4] for m in measured)
        t_views, ref_views, scales = [], [], []
        for d_view, _, dr, _, _ in measured:  # one scale per view, from its reference distances
            t_stable, ref_stable, view_scale = stabilised(d_view, dr, self.transform)
            t_views.append(t_stable)
            ref_views.append(ref_stable)
            scales.append(view_scale)
        scale = scales[0]
        t, ref = t_views[0], ref_views[0]
        variance: str = self.variance
        choice = None
        if variance == "auto":  # decided on the reference models alone, never on the target's candidates
            choice = choose_variance(ref, refs.inside, online=self.online)
            variance = choice.chosen
        if views:
            t_all, ref_all = np.stack(t_views, 1), np.stack(ref_views, 2)  # (N, V), (K, N, V)
            scores = multivariate_scores(t_all, ref_all, refs.inside, online=self.online)
            for _, status_view, _, _, _ in measured[1:]:  # a view cut short cuts the candidate short
                status[status_view == Status.BUDGET_HIT] = Status.BUDGET_HIT
            status[oracle.ledger.cut_short().numpy()] = Status.BUDGET_HIT
        else:
            scores = likelihood_scores(t, ref, refs.inside, online=self.online, variance=variance)
        scores[oracle.ledger.used.numpy() == 0] = 0.0  # never queried: no evidence either way
        return RawScores(
            scores=scores,
            status=status,
            extras={
                "n_reference": refs.k,
                "online": self.online,
                "signed_distance": d_target,
                "reference_distances": d_ref,
                "in_models_per_candidate": float(refs.inside.sum(0).mean()),
                "reference_size": refs.size,
                "misclassified": int((status == Status.MISCLASSIFIED).sum()),
                "reference_misclassified": int((ref_status == Status.MISCLASSIFIED).sum()),
                "reference_failed": int((ref_status == Status.FAILED).sum()),
                "reference_queries": int(ref_queries),
                "distance_scale": scale,
                "search": self.search,
                **({"views": list(views), "view_distances": np.stack([m[0] for m in measured])} if views else {}),
                **({"variance_choice": choice.to_dict()} if choice is not None else {}),
            },
        )
