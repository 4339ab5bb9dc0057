"""Guided boundary search: nearer boundaries than plain HSJA on closed-form models, never below them; seeds,
batch order, budgets, and the fallback when the prior points the wrong way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import LinearModel

from labelleak.attacks import ShadowData, ShadowRecipe, Status, create_attack
from labelleak.attacks.guided import GuidedSearch, _GuidedRun, mix_prior, orthonormal
from labelleak.attacks.hsja import HopSkipJump
from labelleak.attacks.qeba import QEBA
from labelleak.errors import InvalidInputError
from labelleak.oracle import CallableOracle
from labelleak.oracle.budget import BudgetedOracle, QueryLedger

RECIPE = ShadowRecipe(hidden=(), epochs=30, lr=1e-2, batch_size=64)


def _problem(d=20, k=4, n=30, seed=0):
    model = LinearModel(n_features=d, n_classes=k, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = (rng.normal(size=(n, d)) * 0.5).astype(np.float32)
    pool = (rng.normal(size=(240, d)) * 0.5).astype(np.float32)
    shadow = ShadowData(pool[:120], model(pool[:120]), pool[120:], model(pool[120:]))
    oracle = CallableOracle(model, input_shape=(d,), n_classes=k, bounds=(-10.0, 10.0))
    return model, oracle, x, model(x), shadow


def test_guided_reaches_the_nearest_boundary_where_plain_hsja_does_not():
    model, oracle, x, y, shadow = _problem()
    exact = model.boundary_distance(x)
    budget = dict(max_iter=30, seed=0)
    plain = create_attack("boundary-hsja", **budget)(oracle, x, y, max_queries_per_sample=600)
    guided = create_attack("boundary-guided", **budget, shadow_recipe=RECIPE)(
        oracle, x, y, shadow=shadow, max_queries_per_sample=600
    )
    assert (guided.status == Status.OK).all() and guided.queries.max() <= 600
    rel_plain, rel_guided = (plain.scores - exact) / exact, (guided.scores - exact) / exact
    assert rel_guided.min() > -1e-4  # a verified adversarial point is never nearer than the nearest boundary
    within_plain, within_guided = np.mean(rel_plain <= 0.05), np.mean(rel_guided <= 0.05)
    # measured at 600 queries: 73% of guided candidates within 5% of the exact distance, 17% of plain ones
    assert within_guided >= 0.6 and within_guided >= within_plain + 0.4, (within_plain, within_guided)
    assert guided.extras["started"] == len(x)
    assert guided.extras["prior_alpha_sum"] / guided.extras["guided_steps"] > 0.5


def test_guided_scores_are_seeded_and_independent_of_batch_order():
    _, oracle, x, y, shadow = _problem(n=16)
    attack = create_attack("boundary-guided", max_iter=5, init_eval=20, seed=3, shadow_recipe=RECIPE)
    a = attack(oracle, x, y, shadow=shadow, max_queries_per_sample=300)
    b = attack(oracle, x, y, shadow=shadow, max_queries_per_sample=300)
    np.testing.assert_array_equal(a.scores, b.scores)
    perm = np.random.default_rng(0).permutation(len(x))
    c = attack(oracle, x[perm], y[perm], shadow=shadow, max_queries_per_sample=300)
    np.testing.assert_array_equal(c.scores, a.scores[perm])
    np.testing.assert_array_equal(c.queries, a.queries[perm])


@pytest.mark.parametrize("cap", [1, 4, 30, 120])
def test_guided_respects_the_per_candidate_budget(cap):
    _, oracle, x, y, shadow = _problem(n=12)
    res = create_attack("boundary-guided", max_iter=5, init_eval=20, shadow_recipe=RECIPE, milestones=(10, 50))(
        oracle, x, y, shadow=shadow, max_queries_per_sample=cap
    )
    assert res.queries.max() <= cap
    if cap >= 30:  # enough for the correctness query, a start's verification and its binary search
        assert (res.status == Status.OK).all()


def _binary_problem(n=24, d=16):
    model = LinearModel(n_features=d, n_classes=2, seed=4)
    x = (np.random.default_rng(2).normal(size=(n, d)) * 0.5).astype(np.float32)
    oracle = CallableOracle(model, input_shape=(d,), n_classes=2, bounds=(-10.0, 10.0))
    normal = torch.tensor(model.W[1] - model.W[0], dtype=torch.float32)
    return model, oracle, x, model(x), normal


def _search(oracle, x, y, prior, *, memory=True, budget=800):
    ledger = QueryLedger(len(x), max_per_sample=budget)
    engine = HopSkipJump(max_iter=30, seed=0)
    found = GuidedSearch(engine, memory=memory).search(
        BudgetedOracle(oracle, ledger), torch.tensor(x), torch.tensor(y), torch.arange(len(x)), prior=prior
    )
    return found, ledger


def test_a_prior_pointing_the_wrong_way_falls_back_to_plain_hsja():
    model, oracle, x, y, normal = _binary_problem()
    exact = model.boundary_distance(x)

    def negated(points, labels):  # a shadow with negated weights: away from the adversarial side
        return torch.where((labels == 0)[:, None], -normal, normal).expand(len(points), -1).clone()

    wrong, ledger = _search(oracle, x, y, negated, memory=False)
    plain, _ = _search(oracle, x, y, None, memory=False)
    assert wrong.stats["prior_alpha_sum"] / wrong.stats["guided_steps"] < -0.5 and wrong.stats["prior_steps"] == 0
    dist = lambda found: np.linalg.norm(found.adv.numpy() - x, axis=1)  # noqa: E731
    np.testing.assert_array_equal(dist(wrong), dist(plain))  # every step used the plain estimate
    assert int(ledger.used.max()) <= 800 and np.median(dist(wrong) / exact - 1) < 0.05


def test_a_right_prior_converges_faster_than_plain_hsja():
    model, oracle, x, y, normal = _binary_problem()
    exact = model.boundary_distance(x)

    def right(points, labels):
        return torch.where((labels == 0)[:, None], normal, -normal).expand(len(points), -1).clone()

    guided, _ = _search(oracle, x, y, right, budget=400)
    plain, _ = _search(oracle, x, y, None, memory=False, budget=400)
    err = lambda found: np.median(np.linalg.norm(found.adv.numpy() - x, axis=1) / exact - 1)  # noqa: E731
    assert err(guided) < 0.01 < err(plain), (err(guided), err(plain))


def test_mix_prior_uses_an_agreeing_prior_and_ignores_an_insignificant_one():
    torch.manual_seed(0)
    d, n = 50, 400
    true = torch.zeros(d)
    true[0] = 1.0
    u = torch.randn(n, d)
    u /= u.norm(dim=1, keepdim=True)
    phi = torch.sign(u @ true)
    v = ((phi - phi.mean())[:, None] * u).mean(0, keepdim=True)
    for prior, expect_used in ((true, True), (torch.eye(d)[1], False)):
        basis = orthonormal(prior[None, None, :])
        s_up2 = ((u @ basis[0, 0]) ** 2).sum()[None, None]
        mixed, used, alpha = mix_prior(v, basis, torch.tensor([n]), s_up2, min_z=2.0)
        assert bool(used[0]) is expect_used
        if expect_used:
            assert abs(float(alpha[0, 0]) - 1) < 0.15 and float(mixed[0] @ true / mixed[0].norm()) > 0.95
        else:
            torch.testing.assert_close(mixed, v)


def test_guided_options_are_checked():
    _, oracle, x, y, _ = _problem(n=4)
    with pytest.raises(InvalidInputError, match="need the adversary's data"):
        create_attack("boundary-guided")(oracle, x, y)
    with pytest.raises(InvalidInputError, match="prior: expected 'none' or 'shadow'"):
        create_attack("boundary-hsja", prior="surrogate")(oracle, x, y)
    with pytest.raises(InvalidInputError, match="starts: expected a non-negative integer"):
        create_attack("boundary-hsja", starts=-1)(oracle, x, y)
    with pytest.raises(InvalidInputError, match="start_tol: expected a number between 0 and 1"):
        GuidedSearch(HopSkipJump(), start_tol=2.0)


def _refine_search(oracle, x, y, *, refine, budget, chunk_elements=1 << 23):
    ledger = QueryLedger(len(x), max_per_sample=budget)
    engine = HopSkipJump(max_iter=50, seed=1, chunk_elements=chunk_elements)
    found = GuidedSearch(engine, refine=refine).search(
        BudgetedOracle(oracle, ledger), torch.tensor(x), torch.tensor(y), torch.arange(len(x))
    )
    return found, ledger


def test_complement_sampling_gets_far_closer_to_a_flat_boundary_than_isotropic_sampling():
    # at 64 features, isotropic sign answers add precision slowly; sampling orthogonal to a trusted estimate
    # shrinks its error by a constant factor per iteration
    model, oracle, x, y, _ = _binary_problem(n=12, d=64)
    exact = model.boundary_distance(x)
    err = lambda found: np.linalg.norm(found.adv.numpy() - x, axis=1) / exact - 1  # noqa: E731
    iso, _ = _refine_search(oracle, x, y, refine=False, budget=1500)
    ref, ledger = _refine_search(oracle, x, y, refine=True, budget=1500)
    assert int(ledger.used.max()) <= 1500 and err(ref).min() > -1e-4
    assert ref.stats["refine_steps"] > 0 and "refine_steps" not in iso.stats
    # measured: median error 0.23% refined against 3.3% isotropic
    assert np.median(err(ref)) < 0.015 and np.median(err(iso)) > 2 * np.median(err(ref)), (err(ref), err(iso))


def test_a_refined_step_shrinks_the_angle_to_the_normal_and_drops_a_contradicted_direction():
    model, oracle, x, y, normal = _binary_problem(n=16, d=32)
    engine = HopSkipJump(max_iter=1, seed=0)
    ledger = QueryLedger(len(x))
    search = GuidedSearch(engine, refine=True)
    x0, labels, rows = torch.tensor(x), torch.tensor(y), torch.arange(len(x))
    run = _GuidedRun(search, BudgetedOracle(oracle, ledger), x0, labels, rows, (), None, None, None)
    run.initialise()
    towards = torch.where((labels == 0)[:, None], normal, -normal) / normal.norm()  # the adversarial side
    noise = torch.randn(len(x), 32, generator=torch.Generator().manual_seed(0))
    noise -= (noise * towards).sum(1, keepdim=True) * towards
    noise /= noise.norm(dim=1, keepdim=True)
    angle = 0.5  # radians between the trusted direction and the normal
    start = math.cos(angle) * towards + math.sin(angle) * noise
    start[-4:] = -towards[-4:]  # these rows "trust" a direction pointing away from the adversarial side
    run.last[:] = start
    run.tan[:] = math.tan(angle)
    counts, delta = torch.full((len(x),), 400), torch.full((len(x),), 0.01)
    out = run._refined_gradient(rows, counts, delta, 1)
    cos_after = (out[:-4] * towards[:-4]).sum(1)
    assert (cos_after > math.cos(angle)).all() and float(cos_after.median()) > math.cos(angle / 2)
    assert torch.isfinite(run.tan[:-4]).all() and (run.tan[:-4] < math.tan(angle)).all()
    assert torch.isnan(run.tan[-4:]).all()  # contradicted: back to isotropic sampling, direction kept
    torch.testing.assert_close(run.last[-4:], start[-4:])
    assert (out[-4:] == 0).all()  # and not stepped along


def test_refined_searches_do_not_depend_on_the_other_candidates_in_their_batch():
    _, oracle, x, y, _ = _binary_problem(n=14, d=48)

    def run(rows):
        found, _ = _refine_search(oracle, x[rows], y[rows], refine=True, budget=900, chunk_elements=1 << 14)
        assert found.stats["refine_steps"] > 0
        return found.adv

    whole = run(slice(None))
    np.testing.assert_array_equal(torch.cat([run(slice(0, 5)), run(slice(5, None))]).numpy(), whole.numpy())


def test_refine_needs_no_adversary_data_and_leaves_qeba_and_linf_unchanged():
    model, oracle, x, y, _ = _binary_problem(n=6, d=16)
    res = create_attack("boundary-hsja", refine=True, max_iter=10, seed=0)(oracle, x, y, max_queries_per_sample=400)
    assert (res.status == Status.OK).all() and res.extras["refine_steps"] > 0
    assert not GuidedSearch(QEBA(ratio=2), refine=True).refine
    images = CallableOracle(
        lambda a: model(a.reshape(len(a), -1)), input_shape=(1, 4, 4), n_classes=2, bounds=(-10.0, 10.0)
    )
    for name in ("boundary-qeba", "boundary-hsja-linf"):
        runs = [
            create_attack(name, refine=r, max_iter=4, seed=0, ratio=2)(
                images, x.reshape(-1, 1, 4, 4), y, max_queries_per_sample=300
            )
            for r in (False, True)
        ]
        np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
        assert "refine_steps" not in runs[1].extras
    with pytest.raises(InvalidInputError, match="refine"):
        create_attack("boundary-hsja", refine="yes")(oracle, x, y)


def _towards_adversarial(y, normal):
    """Unit normal of the binary problem's boundary, pointing from each row's class to the other."""
    return torch.where(torch.tensor(y == 0)[:, None], normal, -normal) / normal.norm()


def _start_run(oracle, x, y, *, doublings, budget=None, kind=None):
    ledger = QueryLedger(len(x), max_per_sample=budget)
    search = GuidedSearch(HopSkipJump(max_iter=0, seed=0), start_doublings=doublings)
    run = (kind or _GuidedRun)(
        search,
        BudgetedOracle(oracle, ledger),
        torch.tensor(x),
        torch.tensor(y),
        torch.arange(len(x)),
        (),
        None,
        None,
        None,
    )
    return run, ledger


def test_a_start_short_of_the_boundary_is_pushed_out_along_its_direction():
    model, oracle, x, y, normal = _binary_problem(n=10)
    exact = torch.tensor(model.boundary_distance(x), dtype=torch.float32)
    towards = _towards_adversarial(y, normal)
    # a shadow that puts the face at a fifth of the target's distance: twice that still keeps the label
    short = torch.tensor(x) + (0.4 * exact)[:, None] * towards
    starts, valid, grow = (
        short[:, None],
        torch.ones(len(x), 1, dtype=torch.bool),
        torch.ones(len(x), 1, dtype=torch.bool),
    )
    fixed, used_fixed = _start_run(oracle, x, y, doublings=0)
    fixed.grow = grow
    fixed._start_from_points(starts, valid)
    assert not fixed.started.any() and int(used_fixed.used.max()) == 1  # one verification query, then nothing
    pushed, ledger = _start_run(oracle, x, y, doublings=5)
    pushed.grow = grow
    pushed._start_from_points(starts, valid)
    assert pushed.started.all()
    # 0.4 -> 0.8 -> 1.6 times the distance: the third try crosses
    err = pushed.dist / exact - 1
    assert (err > -1e-4).all() and (err < 3e-3).all(), err  # then the binary search lands on the boundary
    not_grown, _ = _start_run(oracle, x, y, doublings=5)  # the same start without the grow mark is not pushed
    not_grown.grow = torch.zeros_like(grow)
    not_grown._start_from_points(starts, valid)
    assert not not_grown.started.any()
    with pytest.raises(InvalidInputError, match="start_doublings"):
        GuidedSearch(HopSkipJump(), start_doublings=-1)


def test_pushing_starts_out_respects_the_budget():
    model, oracle, x, y, normal = _binary_problem(n=6)
    exact = torch.tensor(model.boundary_distance(x), dtype=torch.float32)
    towards = _towards_adversarial(y, normal)
    starts = (torch.tensor(x) + (0.01 * exact)[:, None] * towards)[:, None].repeat(1, 3, 1)  # far too short
    run, ledger = _start_run(oracle, x, y, doublings=20, budget=7)
    run.grow = torch.ones(len(x), 3, dtype=torch.bool)
    run._start_from_points(starts, torch.ones(len(x), 3, dtype=torch.bool))
    assert int(ledger.used.max()) <= 7


def test_the_binary_search_starts_from_a_known_bracket():
    model, oracle, x, y, normal = _binary_problem(n=8)
    exact = torch.tensor(model.boundary_distance(x), dtype=torch.float32)
    towards = _towards_adversarial(y, normal)
    far = torch.tensor(x) + (exact / 0.98)[:, None] * towards  # the boundary at 98% of the segment
    results = []
    for low in (None, torch.full((len(x),), 0.97)):  # what a start's coarse search leaves: [low, 1] is narrow
        run, ledger = _start_run(oracle, x, y, doublings=0)
        run.adv[:] = far
        run._binary_search(torch.arange(len(x)), low)
        results.append((run.dist.clone(), int(ledger.used.sum())))
    (d_plain, q_plain), (d_known, q_known) = results
    for d in (d_plain, d_known):  # both stop within the tightened threshold (1 / 16^1.5 / 16 of the segment)
        assert ((d / exact - 1) > -1e-4).all() and ((d / exact - 1) < 3e-3).all(), d / exact - 1
    assert q_known <= q_plain - 4 * len(x)  # [0.97, 1] instead of [0, 1]: log2(1 / 0.03), about 5 queries fewer


def test_auto_picks_qeba_only_for_images_with_a_rich_low_resolution_grid():
    attack = create_attack("boundary-guided")
    assert attack.resolved_method((3, 32, 32)) == "qeba" and isinstance(attack.engine((3, 32, 32)), QEBA)
    assert attack.resolved_method((1, 8, 8)) == "hsja" and attack.resolved_method((64,)) == "hsja"
    assert create_attack("boundary-hsja").resolved_method((3, 32, 32)) == "hsja"


class _NoBracket(_GuidedRun):
    def _binary_search(self, rows, low=None):
        super()._binary_search(rows, None)


def test_the_start_s_coarse_bracket_reaches_the_binary_search():
    model, oracle, x, y, normal = _binary_problem(n=8)
    exact = torch.tensor(model.boundary_distance(x), dtype=torch.float32)
    towards = _towards_adversarial(y, normal)
    starts = (torch.tensor(x) + (3 * exact)[:, None] * towards)[:, None]
    used = []
    for kind in (_GuidedRun, _NoBracket):
        run, ledger = _start_run(oracle, x, y, doublings=0, kind=kind)
        run._start_from_points(starts, torch.ones(len(x), 1, dtype=torch.bool))
        assert ((run.dist / exact - 1) < 3e-3).all()
        used.append(ledger.used.clone())
    assert (used[0] <= used[1] - 4).all(), used  # the coarse search's 1/64 bracket saves about 6 queries


def test_auto_resolves_to_qeba_on_images_and_says_so():
    image_model = LinearModel(n_features=3 * 32 * 32, n_classes=2, seed=0)
    images = CallableOracle(image_model, input_shape=(3, 32, 32), n_classes=2, bounds=(-10.0, 10.0))
    x = (np.random.default_rng(0).normal(size=(4, 3, 32, 32)) * 0.5).astype(np.float32)
    y = image_model(x)
    # no adversary data and refine on: QEBA ignores refine, so the search is plain QEBA (not the guided one)
    res = create_attack("boundary-guided", starts=0, shadow_starts=0, prior="none", max_iter=2, seed=0)(
        images, x, y, max_queries_per_sample=150
    )
    assert res.extras["method"] == "qeba" and "refine_steps" not in res.extras and "started" not in res.extras
    plain = create_attack("boundary-qeba", max_iter=2, seed=0)(images, x, y, max_queries_per_sample=150)
    np.testing.assert_array_equal(res.scores, plain.scores)
    tabular = create_attack("boundary-guided", starts=0, shadow_starts=0, prior="none", max_iter=2, seed=0)(
        images.__class__(image_model, input_shape=(3072,), n_classes=2, bounds=(-10.0, 10.0)),
        x.reshape(4, -1),
        y,
        max_queries_per_sample=150,
    )
    assert tabular.extras["method"] == "hsja" and "refine_steps" in tabular.extras


class _NoPruning(_GuidedRun):
    def _can_win(self, cand, target, share):
        return torch.ones(len(cand), dtype=torch.bool)


def test_a_start_that_cannot_win_is_not_searched_further():
    model, oracle, x, y, normal = _binary_problem(n=8)
    exact = torch.tensor(model.boundary_distance(x), dtype=torch.float32)
    towards = _towards_adversarial(y, normal)
    side = torch.randn(len(x), towards.shape[1], generator=torch.Generator().manual_seed(0))
    side -= (side * towards).sum(1, keepdim=True) * towards
    tilted = (towards + math.sqrt(3) * side / side.norm(dim=1, keepdim=True)) / 2  # 60 degrees off the normal
    near = torch.tensor(x) + (1.1 * exact)[:, None] * towards  # its ray meets the boundary at the distance
    far = torch.tensor(x) + (3 * exact)[:, None] * tilted  # its ray meets it at twice the distance
    starts, valid = torch.stack([near, far], 1), torch.ones(len(x), 2, dtype=torch.bool)
    results = []
    for kind in (_GuidedRun, _NoPruning):
        run, ledger = _start_run(oracle, x, y, doublings=0, kind=kind)
        run._start_from_points(starts, valid)
        results.append((run.adv.clone(), ledger.used.clone()))
    (adv, used), (adv_all, used_all) = results
    # the far start's first midpoint (1.5 times the distance) keeps the label and is already farther than the
    # near start's verified point: its other five bisection steps are skipped, and the same start is kept
    torch.testing.assert_close(adv, adv_all)
    assert (used <= used_all - 4).all(), (used, used_all)


def test_shadow_starts_auto_takes_the_nearest_face_on_images_and_three_elsewhere():
    attack = create_attack("boundary-guided")
    assert attack.shadow_starts == "auto"
    assert attack.resolved_shadow_starts((3, 32, 32)) == 1
    assert attack.resolved_shadow_starts((1, 8, 8)) == 3 and attack.resolved_shadow_starts((64,)) == 3
    assert create_attack("boundary-guided", shadow_starts=2).resolved_shadow_starts((3, 32, 32)) == 2
    _, oracle, x, y, shadow = _problem(n=8)
    common = dict(max_iter=3, init_eval=20, seed=0, shadow_recipe=RECIPE)
    auto = create_attack("boundary-guided", **common)(oracle, x, y, shadow=shadow, max_queries_per_sample=200)
    three = create_attack("boundary-guided", shadow_starts=3, **common)(
        oracle, x, y, shadow=shadow, max_queries_per_sample=200
    )
    np.testing.assert_array_equal(auto.scores, three.scores)
    assert auto.extras["shadow_starts"] == 3
    with pytest.raises(InvalidInputError, match="shadow_starts: expected a non-negative integer or 'auto'"):
        create_attack("boundary-guided", shadow_starts="many")(oracle, x, y, shadow=shadow)


def _bent_problem():
    """2-D, box [-1, 1]: start A = (0.6, 0.3) keeps the label and its pushes leave the box; start B = (0, 0.65) is
    adversarial at 0.65. Only A's clamped (bent) segment reaches the region 0.5 < angle < 0.6, r >= 0.5."""

    def labels(x):
        r, angle = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])
        return (((x[:, 0] < 0.1) & (x[:, 1] >= 0.64)) | ((angle > 0.5) & (angle < 0.6) & (r >= 0.5))).astype(np.int64)

    oracle = CallableOracle(labels, input_shape=(2,), n_classes=2, bounds=(-1.0, 1.0))
    x, y = np.zeros((1, 2), dtype=np.float32), np.zeros(1, dtype=np.int64)
    return oracle, x, y, torch.tensor([[[0.6, 0.3], [0.0, 0.65]]])


def test_a_push_the_box_clamps_is_never_pruned():
    oracle, x, y, starts = _bent_problem()
    found = []
    for kind in (_GuidedRun, _NoPruning):
        run, _ = _start_run(oracle, x, y, doublings=3, kind=kind)
        run.grow = torch.tensor([[True, False]])
        run._start_from_points(starts, torch.ones(1, 2, dtype=torch.bool))
        found.append(float(run.dist[0]))
    # A's first push (1.0, 0.6) is clamped: its bent segment ends near 0.5, nearer than B's 0.65
    assert found[0] == pytest.approx(found[1]) and found[0] < 0.6, found


class _NothingKnown(_GuidedRun):
    def _pushed_share(self, pushed, free):
        return torch.zeros(len(pushed))


def test_an_unclamped_push_starts_its_bisection_at_the_point_asked_before():
    model, oracle, x, y, normal = _binary_problem(n=8)
    exact = torch.tensor(model.boundary_distance(x), dtype=torch.float32)
    short = torch.tensor(x) + (0.4 * exact)[:, None] * _towards_adversarial(y, normal)  # crosses at 1.6x
    runs = []
    for kind in (_GuidedRun, _NothingKnown):
        run, ledger = _start_run(oracle, x, y, doublings=5, kind=kind)
        run.grow = torch.ones(len(x), 1, dtype=torch.bool)
        run._start_from_points(short[:, None], torch.ones(len(x), 1, dtype=torch.bool))
        assert ((run.dist / exact - 1) < 3e-3).all()
        runs.append(ledger.used.clone())
    assert (runs[0] < runs[1]).all(), runs  # [0.5, 1] of the last segment was known: one bisection step fewer
