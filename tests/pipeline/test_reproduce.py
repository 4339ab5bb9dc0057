"""labelleak reproduce: plans, the split it relies on, the smoothing radius, and every experiment end to end on
tiny synthetic images (seconds each)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelleak.attacks import Status, create_attack
from labelleak.attacks.smoothing import clopper_pearson_lower
from labelleak.cli import app
from labelleak.data import SplitSizes, four_way_split
from labelleak.errors import DataFileError, InvalidInputError, UnknownNameError
from labelleak.oracle import CallableOracle
from labelleak.pipeline.plan import experiment_names, fit_to_pool, load_plan
from labelleak.pipeline.reproduce import run_reproduce

EXPERIMENTS = ["defenses", "distances", "lowfpr", "norms", "queries", "sizes", "threshold", "transfer-ablation"]


# ---------------------------------------------------------------- randomized smoothing


def test_clopper_pearson_lower_golden_values():
    # all successes: the bound solves p^n = alpha; no successes: 0; k of n agrees with the beta quantile
    assert clopper_pearson_lower(np.array([10]), np.array([10]), 0.05)[0] == pytest.approx(0.05**0.1, rel=1e-9)
    assert clopper_pearson_lower(np.array([0]), np.array([10]), 0.05)[0] == 0.0
    assert clopper_pearson_lower(np.array([5]), np.array([10]), 0.05)[0] == pytest.approx(0.2224, abs=1e-4)


@pytest.fixture
def binary_linear():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=6), 0.1
    fn = lambda x: (x.reshape(len(x), -1) @ w + b > 0).astype(np.int64)  # noqa: E731
    oracle = CallableOracle(fn, input_shape=(6,), n_classes=2, bounds=(-10.0, 10.0))
    x = (rng.normal(size=(80, 6)) * 0.3).astype(np.float32)
    exact = np.abs(x @ w + b) / np.linalg.norm(w)
    return oracle, x, fn(x), exact


def test_smoothing_radius_matches_closed_form_for_a_linear_classifier(binary_linear):
    # for f(x) = [w.x + b > 0], P(f(x + e) = f(x)) = Phi(d / sigma): sigma * Phi^-1(p) is exactly the distance d
    oracle, x, y, exact = binary_linear
    result = create_attack("smoothing", sigma=0.5, n=20_000, alpha=0.001, seed=0)(oracle, x, y)
    near = exact < 1.0  # beyond ~2 sigma every draw agrees and the bound saturates
    err = result.scores[near] - exact[near]
    assert np.abs(err).max() < 0.05 and err.mean() < 0  # a lower confidence bound sits just below the truth
    assert (result.queries == 20_000).all() and result.status_counts()["ok"] == len(x)
    radius = result.extras["per_sample"]["certified_radius"]
    assert (radius >= 0).all() and np.array_equal(radius > 0, result.extras["per_sample"]["p_lower"] > 0.5)


def test_smoothing_is_seeded_order_free_and_honours_the_budget(binary_linear):
    oracle, x, y, _ = binary_linear
    attack = create_attack("smoothing", sigma=0.3, n=300, seed=4)
    first, again = attack(oracle, x, y), attack(oracle, x, y)
    assert np.array_equal(first.scores, again.scores)
    perm = np.random.default_rng(1).permutation(len(x))
    assert np.array_equal(attack(oracle, x[perm], y[perm]).scores, first.scores[perm])
    capped = attack(oracle, x, y, max_queries_per_sample=100)
    assert capped.queries.max() <= 100
    assert (capped.status == Status.BUDGET_HIT).all()


def test_whitebox_boundary_stays_within_the_budget():
    import torch

    from labelleak.oracle import TorchOracle

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3)).eval()
    oracle = TorchOracle(model, input_shape=(6,), n_classes=3)
    x = np.random.default_rng(0).uniform(0, 1, size=(20, 6)).astype(np.float32)
    y = oracle.predict_labels(x)
    result = create_attack("boundary-whitebox", steps=100)(oracle, x, y, max_queries_per_sample=30)
    assert result.queries.max() <= 30
    assert set(np.unique(result.status)) <= {Status.BUDGET_HIT, Status.FAILED}


# ---------------------------------------------------------------- the split and the plans


def test_reserved_split_shares_nonmembers_and_shadow_across_sizes():
    small = four_way_split(1000, SplitSizes(50, 100, 200, 200), seed=3, reserve_train=300)
    large = four_way_split(1000, SplitSizes(300, 100, 200, 200), seed=3, reserve_train=300)
    assert set(small.target_train) < set(large.target_train)
    for part in ("target_test", "shadow_train", "shadow_test"):
        assert np.array_equal(getattr(small, part), getattr(large, part))
    with pytest.raises(InvalidInputError, match="reserve_train 10 is smaller than target_train 50"):
        four_way_split(1000, SplitSizes(50, 100, 200, 200), seed=3, reserve_train=10)


def test_every_packaged_experiment_loads_at_both_scales():
    assert experiment_names() == EXPERIMENTS
    for name in EXPERIMENTS:
        for scale in ("cpu", "paper"):
            plan = load_plan(name, scale=scale)
            assert plan.runs and plan.claim and plan.kind == name
            assert all(r.config.dataset == "cifar10" for r in plan.runs)


def test_paper_scale_uses_the_papers_settings_and_cpu_scale_is_smaller():
    paper, cpu = load_plan("sizes", scale="paper"), load_plan("sizes", scale="cpu")
    assert sorted({r.point["train_size"] for r in paper.runs}) == [100, 500, 1000, 2000, 3000]
    c = paper.runs[0].config
    assert (c.arch, c.width, c.epochs, 2 * c.shadow_size, c.max_iter, c.max_eval, c.test_size) == (
        "cnn7",
        1.0,
        200,
        46_000,
        50,
        10_000,
        1000,
    )
    by_group = {r.group: r.config for r in paper.runs}
    assert by_group["boundary"].eval_size == 200 and by_group["wide"].eval_size == 1000
    assert {"boundary-hsja", "boundary-qeba", "boundary-whitebox"} <= set(by_group["boundary"].attacks)
    assert {"gap", "transfer", "score-loss"} <= set(by_group["wide"].attacks)
    k = cpu.runs[0].config
    assert k.width < c.width and k.epochs < c.epochs and k.shadow_size < c.shadow_size and k.queries is not None
    assert all(r.config.reserve_train == 3000 for r in paper.runs)  # sizes share non-members and shadow data


def test_plan_overrides_replace_grid_axes_and_reject_unknown_names(tmp_path):
    plan = load_plan("sizes", overrides={"train_size": [10, 20], "epochs": 2})
    assert sorted({r.config.train_size for r in plan.runs}) == [10, 20]
    # a narrowed grid keeps the full plan's reserve: its targets are the full experiment's (same split, cache hits)
    assert all(r.config.epochs == 2 and r.config.reserve_train == 3000 for r in plan.runs)
    assert {r.config.reserve_train for r in load_plan("sizes", overrides={"train_size": [5000]}).runs} == {5000}
    with pytest.raises(UnknownNameError, match="choose from defenses, distances, lowfpr, norms"):
        load_plan("nope")
    with pytest.raises(InvalidInputError, match="scale: expected one of cpu, paper"):
        load_plan("sizes", scale="huge")
    with pytest.raises(InvalidInputError, match="unknown key"):
        load_plan("sizes", overrides={"epoch": 3})
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: sizes\nsurprise: 1\n")
    with pytest.raises(DataFileError, match="unknown key.*surprise"):
        load_plan(bad)


def test_fit_to_pool_keeps_the_sizes_the_user_set():
    from labelleak.pipeline.plan import _need, _scaled_sizes

    plan = fit_to_pool(load_plan("sizes", overrides={"train_size": [50, 1000]}), 2000, fixed={"train_size"})
    assert plan.pool["kept_as_set"] == ["train_size"] and plan.pool["factor"] < 0.2
    configs = {r.point["train_size"]: r.config for r in plan.runs}
    assert set(configs) == {50, 1000}  # the user's sizes are kept, the plan's shrink
    # the members' reserve shrinks with the plan but never below the user's largest target
    assert {c.reserve_train for c in configs.values()} == {1000}
    needs = [_need(_scaled_sizes(c, 1.0, set())) for c in configs.values()]
    assert max(needs) <= 2000 and max(needs) >= 1995  # the largest factor that fits
    with pytest.raises(InvalidInputError, match=r"sizes set with --set \(train_size\) need 1006 .* holds 900"):
        fit_to_pool(load_plan("sizes", overrides={"train_size": [1000]}), 900, fixed={"train_size"})


def test_fit_to_pool_scales_every_size_by_one_factor():
    plan = fit_to_pool(load_plan("sizes"), 900)  # the cpu plan needs 3000 + 1000 + 2 * 2500 = 9000
    assert plan.pool["factor"] == pytest.approx(0.1, abs=1e-3)
    c = next(r.config for r in plan.runs if r.point["train_size"] == 300)
    assert (c.train_size, c.test_size, c.shadow_size, c.reserve_train) == (300, 100, 250, 300)


def test_fit_to_pool_counts_the_rows_dp_tuning_and_early_stopping_take():
    from labelleak.pipeline.plan import _need, _scaled_sizes
    from labelleak.pipeline.setup.common import rows_beyond_split

    # the four parts of the cpu plan take 1000 + 1000 + 2 * 2500 = 7000; DP-SGD tunes on 1000 more rows outside
    # the training set and early stopping validates on 100: 7,500 is too few for the dp runs alone
    plan = fit_to_pool(load_plan("defenses"), 7500)
    assert plan.pool["largest_run_needs"] == 8000 and plan.pool["factor"] < 1.0
    needs = {
        r.config.defense: _need(_scaled_sizes(r.config, 1.0, set())) + rows_beyond_split(r.config) for r in plan.runs
    }
    assert max(needs.values()) <= 7500 and needs["dp=8"] == max(needs.values()) > needs["none"]
    early = next(r.config for r in plan.runs if r.config.defense == "early-stopping=5")
    assert rows_beyond_split(early) == round(0.1 * early.train_size)  # val_fraction of the members


# ---------------------------------------------------------------- every experiment, end to end


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    """600 RGB 8x8 images of 3 classes (class-dependent colour means plus noise)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 200)
    means = np.array([[0.3, 0.5, 0.7], [0.6, 0.4, 0.3], [0.5, 0.6, 0.5]])
    x = np.clip(means[y][:, None, None, :] + rng.normal(scale=0.25, size=(600, 8, 8, 3)), 0, 1)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=(x * 255).astype(np.uint8), y=y)
    return str(path)


def _tiny(path: str, cache: str, **more) -> dict:
    return {
        "dataset": "npz",
        "data": path,
        "arch": "cnn2",
        "width": 0.5,
        "epochs": 3,
        "test_size": 60,
        "shadow_size": 80,
        "queries": 40,
        "max_eval": 20,
        "init_eval": 10,
        "n_boot": 20,
        "noise_samples": 10,
        "smoothing_n": 30,
        "reserve_train": None,
        "cache_dir": cache,
        **more,
    }


def _run(name, tiny_images, tmp_path, **more):
    overrides = _tiny(tiny_images, str(tmp_path / "cache"), **more)
    return run_reproduce(name, out=tmp_path / name, overrides=overrides, progress=False)


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_sizes_experiment_end_to_end(tiny_images, tmp_path):
    summary = _run(
        "sizes",
        tiny_images,
        tmp_path,
        train_size=[20, 60],
        eval_size=50,
        reserve_train=60,
        attacks=["gap", "boundary-hsja"],
    )
    rows = summary["tables"]["sizes"]
    assert {(r["train_size"], r["attack"]) for r in rows} == {
        (s, a) for s in (20, 60) for a in ("gap", "boundary-hsja")
    }
    for r in rows:  # members capped by the target's size, non-members by the eval size
        assert (r["n_members"], r["n_nonmembers"]) == (min(r["train_size"], 50), 50)
        assert 0 <= r["auc"] <= 1 and r["auc_low"] <= r["auc"] <= r["auc_high"]
    out = tmp_path / "sizes"
    assert len(_csv(out / "sizes.csv")) == len(rows)
    assert (out / "auc_by_size.png").stat().st_size > 1000 and "| gap |" in (out / "summary.md").read_text()
    # the 20-member target's members are among the 60-member target's: both share non-members
    res = {s: json.loads((out / "runs" / f"train_size={s}" / "wide" / "results.json").read_text()) for s in (20, 60)}
    assert res[20]["split"]["target_test"] == res[60]["split"]["target_test"] == 60


def test_queries_experiment_reads_one_run_at_many_budgets(tiny_images, tmp_path):
    summary = _run("queries", tiny_images, tmp_path, train_size=60, eval_size=30, queries=300)
    rows = summary["tables"]["queries"]
    for attack in ("boundary-hsja", "boundary-qeba"):
        qs = [r["queries"] for r in rows if r["attack"] == attack]
        assert qs[0] == 100 and qs == sorted(qs) and len(qs) >= 2 and qs[-1] <= 300
    assert (tmp_path / "queries" / "tpr_by_queries.png").is_file()


def test_norms_experiment_reports_four_norms_per_attack(tiny_images, tmp_path):
    summary = _run("norms", tiny_images, tmp_path, train_size=60, eval_size=30)
    rows = summary["tables"]["norms"]
    assert [r["attack"] for r in rows] == ["boundary-hsja", "boundary-hsja-linf"]
    norms = ("l0", "l1", "l2", "linf")
    want = {"attack"} | {f"auc_{k}{end}" for k in norms for end in ("", "_low", "_high")}
    assert all(set(r) == want for r in rows)  # each norm's AUC with its interval
    assert all(r[f"auc_{k}_low"] <= r[f"auc_{k}"] <= r[f"auc_{k}_high"] for r in rows for k in norms)


def test_threshold_experiment_sweeps_t_and_compares_with_the_shadow_threshold(tiny_images, tmp_path):
    summary = _run("threshold", tiny_images, tmp_path, train_size=60, eval_size=30)
    rows = summary["tables"]["threshold"]
    sweep = [r for r in rows if r["method"] == "data-free"]
    assert [r["t"] for r in sweep] == [0.0, 1.0, 2.0, 5.0] + [float(t) for t in range(10, 101, 10)]
    thresholds = [r["threshold"] for r in sweep]
    assert thresholds == sorted(thresholds)  # percentiles of the same noise scores
    assert sweep[0]["recall"] >= sweep[-1]["recall"]  # a higher threshold flags fewer members
    shadow = [r for r in rows if r["method"] != "data-free"]
    assert len(shadow) == 1 and 0 <= shadow[0]["accuracy"] <= 1


def test_distances_experiment_histograms_and_certified_radius(tiny_images, tmp_path):
    summary = _run("distances", tiny_images, tmp_path, train_size=60, eval_size=30, smoothing_sigma=0.1)
    rows = {r["quantity"].split(":")[0]: r for r in summary["tables"]["distances"]}
    assert set(rows) == {"boundary-hsja", "smoothing"}
    assert 0 <= rows["smoothing"]["member_abstained"] <= 1 and rows["smoothing"]["member_mean"] >= 0
    arrays = np.load(tmp_path / "distances" / "runs" / "base" / "all" / "arrays.npz")
    assert arrays["smoothing/certified_radius"].shape == (60,) and (arrays["smoothing/queries"] == 30).all()
    assert (tmp_path / "distances" / "distances.png").is_file()


def test_transfer_ablation_varies_shadow_architecture_and_size(tiny_images, tmp_path):
    summary = _run(
        "transfer-ablation",
        tiny_images,
        tmp_path,
        train_size=60,
        eval_size=30,
        shadow_arch=["mlp", "cnn2"],
        shadow_size=[40, 80],
    )
    rows = summary["tables"]["transfer_ablation"]
    assert {(r["shadow_arch"], r["shadow_size"], r["relabel"]) for r in rows} == {
        (a, s, relabel) for a in ("mlp", "cnn2") for s in (40, 80) for relabel in ("once", "online")
    }
    assert all(0 <= r["shadow_label_agreement"] <= 1 for r in rows)


def test_resume_skips_finished_audits(tiny_images, tmp_path):
    first = _run("norms", tiny_images, tmp_path, train_size=60, eval_size=30)
    result_file = tmp_path / "norms" / "runs" / "base" / "all" / "results.json"
    stamp = result_file.stat().st_mtime_ns
    again = run_reproduce(
        "norms",
        out=tmp_path / "norms",
        progress=False,
        resume=True,
        overrides=_tiny(tiny_images, str(tmp_path / "cache"), train_size=60, eval_size=30),
    )
    assert result_file.stat().st_mtime_ns == stamp
    assert again["tables"] == first["tables"]
    # the wall time is this invocation's; the attacks' own times are read back with their results
    n_attacks = sum(len(r["config"]["attacks"]) for r in again["runs"])
    assert first["runs_read_back"] == first["attacks_read_back"] == 0
    assert again["runs_read_back"] == len(again["runs"]) and again["attacks_read_back"] == n_attacks
    assert again["attack_seconds"] == pytest.approx(first["attack_seconds"]) and first["attack_seconds"] > 0
    text = (tmp_path / "norms" / "summary.md").read_text()
    assert f"{n_attacks} attack results were read back from an earlier one)" in text
    assert f"add up to {first['attack_seconds']:.0f} s" in text


def test_small_pool_scales_the_plan(tmp_path):
    summary = run_reproduce(
        "norms",
        out=tmp_path / "n",
        progress=False,
        overrides={
            "dataset": "digits",
            "arch": "mlp",
            "epochs": 2,
            "eval_size": 20,
            "queries": 30,
            "max_eval": 20,
            "init_eval": 10,
            "n_boot": 10,
            "cache_dir": str(tmp_path / "c"),
        },
    )
    assert summary["pool"]["n_pool"] == 1797 and summary["pool"]["factor"] < 1
    assert "every size but those set with --set (eval_size) was scaled" in (tmp_path / "n" / "summary.md").read_text()
    assert summary["runs"][0]["config"]["eval_size"] == 20


def test_cli_reproduce_errors_are_one_line():
    runner = CliRunner()
    result = runner.invoke(app, ["reproduce", "nope"])
    assert result.exit_code == 2 and "unknown experiment 'nope'" in result.output
    result = runner.invoke(app, ["reproduce", "sizes", "--set", "epochs"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_adversary_models_follow_the_audit_training_recipe():
    from labelleak.pipeline.audit import attack_params
    from labelleak.pipeline.config import AuditConfig

    cfg = AuditConfig(epochs=7, lr=0.01, batch_size=32, lr_schedule="cosine", width=0.5)

    class _Setup:
        arch = "cnn5"
        reference_size = 100
        adversary_defense = "none"
        adversary_init = None

    for name in ("transfer", "score-nn", "oslo", "lira", "noise"):
        r = create_attack(name, **attack_params(name, cfg, _Setup())).shadow_recipe
        assert (r.arch, r.epochs, r.lr, r.batch_size, r.lr_schedule, r.width) == ("cnn5", 7, 0.01, 32, "cosine", 0.5)
    assert "lr_schedule: expected constant or cosine" in "; ".join(AuditConfig(lr_schedule="step").problems())


def test_cli_reproduce_on_an_image_folder_scales_the_plan_to_the_pool(tmp_path):
    """The README's GTSRB example: ``--dataset folder`` in place of CIFAR-10, odd image sizes resized."""
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "signs"
    for k, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        (root / f"{k:05d}").mkdir(parents=True)
        for i in range(60):
            size = 8 + i % 3  # GTSRB images come in many sizes
            pixels = np.clip(np.array(colour) + rng.normal(scale=60, size=(size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"{k:05d}" / f"{i:05d}.ppm")
        (root / f"{k:05d}" / f"GT-{k:05d}.csv").write_text("not an image\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "reproduce",
            "norms",
            "--dataset",
            "folder",
            "--data",
            str(root),
            "--out",
            str(out),
            "--quiet",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--set",
            "arch=cnn2",
            "--set",
            "epochs=2",
            "--set",
            "queries=30",
            "--set",
            "max_eval=20",
            "--set",
            "init_eval=10",
            "--set",
            "n_boot=10",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pool"]["n_pool"] == 180 and summary["pool"]["factor"] < 0.1
    res = json.loads((out / "runs" / "base" / "all" / "results.json").read_text())
    assert res["dataset"]["name"] == "signs" and res["dataset"]["n_classes"] == 3
    assert {r["attack"] for r in summary["tables"]["norms"]} == {"boundary-hsja", "boundary-hsja-linf"}


def test_cli_reproduce_accepts_cifar100_in_place_of_cifar10(tmp_path):
    rng = np.random.default_rng(2)
    y = np.arange(400) % 100
    x = rng.integers(0, 256, size=(400, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c100.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "reproduce",
            "sizes",
            "--dataset",
            "cifar100",
            "--data",
            str(tmp_path / "c100.npz"),
            "--out",
            str(out),
            "--quiet",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--set",
            "arch=mlp",
            "--set",
            "epochs=1",
            "--set",
            "attacks=gap",
            "--set",
            "train_size=[40,80]",
            "--set",
            "n_boot=10",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "summary.json").read_text())["tables"]["sizes"]
    assert sorted(r["train_size"] for r in rows) == [40, 80]  # the user's sizes are kept, the plan's shrink
    pool = json.loads((out / "summary.json").read_text())["pool"]
    assert pool["kept_as_set"] == ["train_size"] and pool["factor"] == pytest.approx(400 / 9000, abs=1e-3)
    res = json.loads(next((out / "runs").glob("*/wide/results.json")).read_text())
    assert res["dataset"]["name"] == "cifar100" and res["dataset"]["n_classes"] == 100


def test_reproduce_repeats_pools_every_run_of_the_plan_over_its_seeds(tiny_images, tmp_path):
    """issue 29, item 7: ``reproduce --repeats N`` runs the experiment under N seeds, each a complete reproduction,
    and pools each run of the plan with Rubin's rules, as ``audit --repeats`` does one audit."""
    from labelleak.pipeline.repeats import run_reproduce_repeats

    overrides = _tiny(tiny_images, str(tmp_path / "cache"), train_size=[60], eval_size=30, seed=3, attacks=["gap"])
    out = tmp_path / "rep"
    pooled = run_reproduce_repeats("sizes", repeats=2, out=out, overrides=overrides, progress=False)
    assert pooled["seeds"] == [3, 4] and [p["folder"] for p in pooled["points"]] == ["train_size=60/wide"]
    folder = pooled["points"][0]["folder"]
    per_seed = [json.loads((out / f"seed-{s}" / "runs" / folder / "results.json").read_text()) for s in (3, 4)]
    assert [r["config"]["seed"] for r in per_seed] == [3, 4]
    assert per_seed[0]["split"] != per_seed[1]["split"] or per_seed[0]["attacks"] != per_seed[1]["attacks"]
    auc = pooled["points"][0]["aggregate"]["attacks"]["gap"]["auc"]
    assert auc["values"] == [r["attacks"]["gap"]["auc"] for r in per_seed]
    assert auc["mean"] == pytest.approx(np.mean(auc["values"]))
    lo, hi = auc["combined_ci"]
    assert lo <= min(auc["values"]) and hi >= max(auc["values"])  # seed and candidate variance both
    assert (out / "seed-3" / "summary.md").is_file() and (out / "seed-4" / "summary.md").is_file()
    page = (out / "pooled" / folder / "report.html").read_text()
    assert f"../../../seed-3/runs/{folder}/report.html" in page
    text = (out / "pooled.md").read_text()
    assert f"| [{folder}](pooled/{folder}/report.html) | gap |" in text
    assert [(r["run"], r["attack"], r["train_size"]) for r in _csv(out / "pooled.csv")] == [(folder, "gap", "60")]
    again = run_reproduce_repeats("sizes", repeats=2, out=out, overrides=overrides, resume=True, progress=False)
    assert again["points"] == pooled["points"]
    assert json.loads((out / "seed-4" / "summary.json").read_text())["runs_read_back"] == 1  # nothing rerun


def test_reproduce_repeats_needs_two_seeds(tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "sizes", "--repeats", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and result.output.strip() == "error: repeats: pooling needs at least 2 seeds, got 0"
