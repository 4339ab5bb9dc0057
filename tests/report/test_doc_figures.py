"""Key figures in docs/ against the committed result files they come from (issue 29: every number in docs/ is
traceable). Each row names a page, the text that must stand there, and the file and value it is read from; a rerun
that changes a file without the page, or an edited page, fails here."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _json(path: str, *keys: Any) -> Any:
    value = json.loads((ROOT / path).read_text())
    for key in keys:
        value = value[key]
    return value


def _csv_row(path: str, attack: str) -> dict[str, Any]:
    """One attack's row of a committed CSV, its numbers as floats (empty cells as None)."""
    with (ROOT / path).open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["attack"] == attack)

    def value(v: str) -> Any:
        try:
            return float(v)
        except ValueError:
            return v or None

    return {k: value(v) for k, v in row.items()}


def _csv(path: str, column: str, row: int = 0) -> float:
    with (ROOT / path).open() as fh:
        return float(list(csv.DictReader(fh))[row][column])


def _table_cell(path: str, first: str, column: int) -> str:
    """A cell of the Markdown table row starting with ``| first |`` in a text result file."""
    for line in (ROOT / path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first:
            return cells[column]
    raise AssertionError(f"{path}: no row {first!r}")


def _curve(run: str, queries: int, key: str) -> float:
    curve = _json("bench/results/distance-cifar-1000/distance.json", "cifar10", "runs", run, "curve")
    return next(point[key] for point in curve if point["queries"] == queries)


LOWFPR = "docs/runs/reproduce-lowfpr-offline1000-cpu/lira_ratio.csv"
HTTP = "bench/results/http/audit-process-batch{}.txt"
GUIDED = "docs/runs/reproduce-lowfpr-guided-cpu/{}.csv"
KTABLE = "bench/results/k-table/digits-cnn2.json"
ONLINE = "docs/runs/reproduce-lowfpr-online-cpu/{}.csv"


def _k_row(k: int, attack: str, key: str, index: int | None = None) -> Any:
    row = next(r for r in _json(KTABLE, "rows") if r["k"] == k and r["attack"] == attack)
    return row[key] if index is None else row[key][index]


# page, how the figure is printed there (format applied to the value), where the value comes from
FIGURES: list[tuple[str, str, Callable[[], Any]]] = [
    ("docs/low-fpr.md", "0.271 [{:.3f}, 0.678]", lambda: _csv(LOWFPR, "ratio@1%_low")),
    ("docs/low-fpr.md", "0.271 [0.133, {:.3f}]", lambda: _csv(LOWFPR, "ratio@1%_high")),
    ("docs/low-fpr.md", "{:.3f} [0.133, 0.678]", lambda: _csv(LOWFPR, "ratio@1%")),
    ("docs/low-fpr.md", "| 0.1% | {:.3f} |", lambda: _csv(LOWFPR, "tpr@0.1%")),
    ("docs/low-fpr.md", "| 0.560 | {:.3f} [0.647, 1.010] |", lambda: _csv(GUIDED.format("lira_ratio"), "ratio@1%", 3)),
    ("docs/low-fpr.md", "0.732 [{:.3f}, 1.010]", lambda: _csv(GUIDED.format("lira_ratio"), "ratio@1%_low", 3)),
    ("docs/low-fpr.md", "0.732 [0.647, {:.3f}]", lambda: _csv(GUIDED.format("lira_ratio"), "ratio@1%_high", 3)),
    ("docs/low-fpr.md", "| 1000 + 1000 | {:.3f} (its", lambda: _csv(GUIDED.format("lowfpr"), "tpr@0.1%", 0)),
    ("docs/low-fpr.md", "| {:.3f} [0.733, 0.787] |", lambda: _csv(GUIDED.format("lowfpr"), "tpr@1%", 0)),
    ("docs/low-fpr.md", "| {:.3f} [0.544, 0.683] |", lambda: _csv(GUIDED.format("lowfpr"), "tpr@1%", 4)),
    ("docs/low-fpr.md", "| 0.560 [{:.3f}, 0.683] |", lambda: _csv(GUIDED.format("lowfpr"), "tpr@1%_low", 4)),
    ("docs/low-fpr.md", "| 64 | {:.3f} [0.116, 0.224] |", lambda: _k_row(64, "lira", "tpr@1%")),
    ("docs/low-fpr.md", "reaches {:.3f} at 1% FPR (AUC 0.941", lambda: _csv(ONLINE.format("lowfpr"), "tpr@1%", 1)),
    ("docs/low-fpr.md", "ratio of {:.3f} [0.052, 0.195]", lambda: _csv(ONLINE.format("lira_ratio"), "ratio@1%", 0)),
    ("docs/low-fpr.md", "ratio of 0.268 [0.052, {:.3f}]", lambda: _csv(ONLINE.format("lira_ratio"), "ratio@1%_high")),
    (
        "docs/low-fpr.md",
        "| 0.060 [0.014, 0.071] | {:.3f} [0.050",
        lambda: _k_row(64, "boundary-lira-guided-offline", "tpr@1%"),
    ),
    ("docs/low-fpr.md", "| 0.847 | {:.3f} | 18 s", lambda: _k_row(64, "boundary-lira-guided-offline", "auc")),
    ("docs/low-fpr.md", "| 16 | 0.160 [{:.3f}, 0.173] |", lambda: _k_row(16, "lira", "tpr@1%_ci", 0)),
    ("docs/benchmarks.md", "| 200 | 0.828 | 0.024 | {:.3f} |", lambda: _curve("boundary-guided", 200, "auc")),
    ("docs/benchmarks.md", "| 200 | {:.3f} | 0.024 |", lambda: _curve("boundary-hsja", 200, "auc")),
    ("docs/benchmarks.md", "| 2000 | {:.3f} | 0.047 |", lambda: _curve("boundary-hsja", 2000, "auc")),
    ("docs/benchmarks.md", "| 256 | 4 | {} |", lambda: _table_cell(HTTP.format(256), "4", 1)),
    ("docs/benchmarks.md", "| 16 | 5.25 | 3.61 | 525 | 92 | {} |", lambda: _table_cell(HTTP.format(256), "16", 5)),
    ("docs/benchmarks.md", "| 4 | 13.83 | 11.92 | 1510 | 398 | {} |", lambda: _table_cell(HTTP.format(64), "4", 5)),
    ("docs/benchmarks.md", "| 0.33 | 6.47 | {} |", lambda: _table_cell(HTTP.format(64), "16", 8)),
    ("docs/benchmarks.md", "| 64 | 16 | {} |", lambda: _table_cell(HTTP.format(64), "16", 1)),
    (
        "docs/benchmarks.md",
        "the quiet audit took {} s at batch 256",
        lambda: _table_cell(HTTP.format(256), "1, no latency", 1),
    ),
]

DEFENSES = "docs/defenses.md"


def _defended(mode: str, defense: str, key: str) -> Any:
    """A cell of the committed adaptive or non-adaptive digits matrix."""
    rows = _json(f"docs/runs/defend-digits-{mode}/matrix.json", "rows")
    return next(r for r in rows if r["defense"] == defense)[key]


FIGURES += [
    (DEFENSES, "| round=1 | 0.933 | {:.3f} [0.531", lambda: _defended("adaptive", "round=1", "lira.auc")),
    (DEFENSES, "[0.531, 0.621] | {:.3f} [0.414", lambda: _defended("nonadaptive", "round=1", "lira.auc")),
    (DEFENSES, "0.460 [{:.3f}, 0.506]", lambda: _defended("nonadaptive", "round=1", "lira.auc_low")),
    (DEFENSES, "0.460 [0.414, {:.3f}]", lambda: _defended("nonadaptive", "round=1", "lira.auc_high")),
    (
        DEFENSES,
        "| label-noise=0.1 | 0.933 | {:.3f} [0.556",
        lambda: _defended("adaptive", "label-noise=0.1", "lira.auc"),
    ),
    (DEFENSES, "0.593 [{:.3f}, 0.629]", lambda: _defended("adaptive", "label-noise=0.1", "lira.auc_low")),
    (DEFENSES, "[0.556, 0.629] | {:.3f} [0.435", lambda: _defended("nonadaptive", "label-noise=0.1", "lira.auc")),
    (DEFENSES, "| hamp=0.9 | 0.940 | {:.3f} [0.464", lambda: _defended("adaptive", "hamp=0.9", "lira.auc")),
    (DEFENSES, "[0.464, 0.557] | {:.3f} [0.451", lambda: _defended("nonadaptive", "hamp=0.9", "lira.auc")),
    (DEFENSES, "0.574 [{:.3f}, 0.620]", lambda: _defended("adaptive", "relaxloss=0.5", "lira.auc_low")),
    (DEFENSES, "[0.530, 0.620] | {:.3f} [0.482", lambda: _defended("nonadaptive", "relaxloss=0.5", "lira.auc")),
    (DEFENSES, "| dp=8 | 0.440 | {:.3f} [0.464", lambda: _defended("adaptive", "dp=8", "lira.auc")),
    (DEFENSES, "[0.464, 0.556] | {:.3f} [0.453", lambda: _defended("nonadaptive", "dp=8", "lira.auc")),
    (DEFENSES, "0.633 [0.587, 0.677] | {:.3f} | 0.39", lambda: _defended("nonadaptive", "none", "boundary-hsja.auc")),
    (DEFENSES, "[0.451, 0.543] | {:.3f} | 0.39", lambda: _defended("adaptive", "hamp=0.9", "boundary-hsja.auc")),
    (DEFENSES, "| 0.553 | {:.2f} |", lambda: _defended("adaptive", "label-noise=0.1", "eps_lb")),
]

BENCH = "docs/benchmarks.md"
ART = "bench/results/{}/hsja_{}.json"
ART_CIFAR = ART.format("cifar10-cnn7", "cifar10")
ART_MLP = ART.format("digits-mlp", "digits")
ART_CNN2 = ART.format("digits-cnn2", "digits")
LINEAR = "bench/results/{}/distance.json"
CIFAR_200 = "bench/results/distance-cifar/distance.json"


def _art_row(path: str, method: str, key: str) -> Any:
    return next(r for r in _json(path, "rows") if r["method"] == method)[key]


def _within(run: str, features: int, classes: int, queries: str = "2000") -> tuple[int, int]:
    """Guided's candidates within 5% of the exact distance, and the candidates, in a linear-benchmark file."""
    row = next(r for r in _json(LINEAR.format(run), "linear") if (r["features"], r["classes"]) == (features, classes))
    n = row["candidates"]
    return round(row["guided"][queries]["within_5pct"] * n), n


def _exact_ci(run: str, features: int, classes: int, side: int) -> float:
    """A side of the exact (Clopper-Pearson) 95% interval of that share."""
    from scipy.stats import binomtest

    ci = binomtest(*_within(run, features, classes)).proportion_ci(0.95, method="exact")
    return (ci.low, ci.high)[side]


def _against_hsja(run: str, queries: int, key: str) -> float:
    rows = _json("bench/results/distance-cifar-1000/distance.json", "cifar10", "against_hsja_at_max")
    return next(r for r in rows if r["run"] == run and r["queries"] == queries)[key]


def _guided_minus_hsja_200(queries: int, key: str) -> float:
    return next(r for r in _json(CIFAR_200, "cifar10", "guided_minus_hsja_at_max") if r["queries"] == queries)[key]


def _qeba_200(queries: int) -> float:
    curve = _json(CIFAR_200, "cifar10", "boundary-qeba", "curve")
    return next(point["auc"] for point in curve if point["queries"] == queries)


FIGURES += [
    (BENCH, "rest on {} non-members", lambda: _json(ART_CIFAR, "candidates_per_class")),
    (BENCH, "| 18648 | {:.3f} | n/a | 0.88 |", lambda: _art_row(ART_CIFAR, "labelleak (equal parameters)", "auc")),
    (
        BENCH,
        "| 20312 | {:.3f} | n/a | 1.49 |",
        lambda: _art_row(ART_CIFAR, "ART 1.20.1 LabelOnlyDecisionBoundary", "auc"),
    ),
    (BENCH, "| digits MLP | {:.2f}x |", lambda: _json(ART_MLP, "speedup_vs_art_equal_params")),
    (BENCH, "| {:+.3f} [-0.074, +0.021]: inconclusive |", lambda: _json(ART_MLP, "auc_difference_equal_params")),
    (BENCH, "| -0.025 [{:+.3f}, +0.021]: inconclusive |", lambda: _json(ART_MLP, "auc_difference_95ci")[0]),
    (BENCH, "| -0.025 [-0.074, {:+.3f}]: inconclusive |", lambda: _json(ART_MLP, "auc_difference_95ci")[1]),
    (BENCH, "| digits cnn2 | {:.2f}x |", lambda: _json(ART_CNN2, "speedup_vs_art_equal_params")),
    (BENCH, "| {:+.3f} [-0.038, +0.060]: inconclusive |", lambda: _json(ART_CNN2, "auc_difference_equal_params")),
    (BENCH, "| +0.009 [{:+.3f}, +0.060]: inconclusive |", lambda: _json(ART_CNN2, "auc_difference_95ci")[0]),
    (BENCH, "| +0.009 [-0.038, {:+.3f}]: inconclusive |", lambda: _json(ART_CNN2, "auc_difference_95ci")[1]),
    (BENCH, "| CIFAR-10 CNN7 (w 0.25) | {:.2f}x |", lambda: _json(ART_CIFAR, "speedup_vs_art_equal_params")),
    (BENCH, "| +0.135 [{:+.3f}, +0.285]: met |", lambda: _json(ART_CIFAR, "auc_difference_95ci")[0]),
    (BENCH, "is below the 2x goal in this run ({:.2f}x)", lambda: _json(ART_CIFAR, "speedup_vs_art_equal_params")),
    (BENCH, "between runs: {:.2f} here", lambda: _art_row(ART_MLP, "labelleak (equal parameters)", "wall_over_limit")),
    (BENCH, "20 / 3: {} of 200 (interval", lambda: _within("distance-200", 20, 3)[0]),
    (BENCH, "200 of 200 (interval {:.3f} to 1)", lambda: _exact_ci("distance-200", 100, 2, 0)),
    (BENCH, "48 / 7: {} of 200", lambda: _within("distance-200", 48, 7)[0]),
    (BENCH, "198 of 200 (interval {:.3f} to 0.999)", lambda: _exact_ci("distance-200", 48, 7, 0)),
    (BENCH, "100 / 10: {} of 200", lambda: _within("distance-200", 100, 10)[0]),
    (BENCH, "183 of 200 (91.5%, interval {:.3f} to 0.950)", lambda: _exact_ci("distance-200", 100, 10, 0)),
    (BENCH, "183 of 200 (91.5%, interval 0.867 to {:.3f})", lambda: _exact_ci("distance-200", 100, 10, 1)),
    (BENCH, "3: interval {:.3f} to 1)", lambda: _exact_ci("distance", 20, 3, 0)),
    (BENCH, "48 / 7 ({} of 40", lambda: _within("distance", 48, 7)[0]),
    (BENCH, "(39 of 40, interval {:.3f} to 0.999)", lambda: _exact_ci("distance", 48, 7, 0)),
    (BENCH, "100 / 10\n  ({} of 40", lambda: _within("distance", 100, 10)[0]),
    (BENCH, "(36 of 40, interval {:.3f} to 0.972)", lambda: _exact_ci("distance", 100, 10, 0)),
    (BENCH, "(36 of 40, interval 0.763 to {:.3f})", lambda: _exact_ci("distance", 100, 10, 1)),
    (
        BENCH,
        "against HSJA's 0.047: {:+.3f} [-0.043, +0.065], inconclusive",
        lambda: _against_hsja("boundary-guided", 200, "tpr_at_1pct_fpr_difference"),
    ),
    (
        BENCH,
        "0.047: +0.000 [{:+.3f}, +0.065], inconclusive",
        lambda: _against_hsja("boundary-guided", 200, "tpr_at_1pct_fpr_low"),
    ),
    (
        BENCH,
        "TPR@1%FPR 0.043 ({:+.3f}\n    [-0.035, +0.040], inconclusive)",
        lambda: _against_hsja("boundary-guided@200", 200, "tpr_at_1pct_fpr_difference"),
    ),
    (
        BENCH,
        "AUC 0.923 (+0.017 [{:+.3f}, +0.028], met)",
        lambda: _against_hsja("boundary-guided@200", 200, "auc_low"),
    ),
    (BENCH, "0.916: +0.010 [{:+.3f}, +0.023] against", lambda: _against_hsja("boundary-guided", 100, "auc_low")),
    (
        BENCH,
        "the paired difference is {:+.3f} [-0.029, +0.017], an interval that holds 0",
        lambda: _guided_minus_hsja_200(200, "difference"),
    ),
    (BENCH, "gives +0.004 [{:+.3f}, +0.027], inconclusive too", lambda: _guided_minus_hsja_200(500, "low")),
    (BENCH, "Plain QEBA reaches {:.3f} at 1,000 queries", lambda: _qeba_200(1000)),
    (BENCH, "and {:.3f} at 2,000, against HSJA's 0.903", lambda: _qeba_200(2000)),
    (
        BENCH,
        "measured {:.3f} in `reproduce queries`",
        lambda: _csv("docs/runs/reproduce-queries-cpu/queries.csv", "auc", 4),
    ),
]

SCALING = "docs/scaling.md"
SCALE = "bench/results/scale-{}.json"
_FIRST, _SECOND, _WIDE = "20261130-173427", "20261130-214211", "20261201-052824"


def _scale(run: str, *keys: str) -> Any:
    return _json(SCALE.format(run), *keys)


FIGURES += [
    (SCALING, "| 56.6 | 40.2 | {:.2f}x | -3.9% |", lambda: _scale(_FIRST, "hsja", "speedup_2_over_1")),
    (SCALING, "| 56.6 | 40.2 | 1.41x | {:.1%} |", lambda: _scale(_FIRST, "hsja", "ray_overhead_1_worker")),
    (SCALING, "| 69.5 | 47.6 | {:.2f}x | -1.2% |", lambda: _scale(_SECOND, "hsja", "speedup_2_over_1")),
    (SCALING, "| 69.5 | 47.6 | 1.46x | {:.1%} |", lambda: _scale(_SECOND, "hsja", "ray_overhead_1_worker")),
    (SCALING, "| 176.1 | 108.0 | {:.2f}x | -5.7% |", lambda: _scale(_WIDE, "hsja", "speedup_2_over_1")),
    (SCALING, "| 176.1 | 108.0 | 1.63x | {:.1%} |", lambda: _scale(_WIDE, "hsja", "ray_overhead_1_worker")),
    (
        SCALING,
        "| 344.1 | 342.7 | {:.2f}x (invalid",
        lambda: _scale(_FIRST, "lira_reference_models", "speedup_2_over_1"),
    ),
    (
        SCALING,
        "(invalid: see below) | {:.1%} |",
        lambda: _scale(_FIRST, "lira_reference_models", "ray_overhead_1_worker"),
    ),
    (SCALING, "| 676.3 | 375.7 | {:.2f}x |", lambda: _scale(_SECOND, "lira_reference_models", "speedup_2_over_1")),
    (SCALING, "| 1.80x | {:.1%} |", lambda: _scale(_SECOND, "lira_reference_models", "ray_overhead_1_worker")),
    (SCALING, "| {:.1f} | 46.0 | 69.5 |", lambda: _scale(_SECOND, "hsja", "seconds_local")),
    (SCALING, "| {:.1f} | 114.9 | 176.1 |", lambda: _scale(_WIDE, "hsja", "seconds_local")),
    (SCALING, "do {:.2f}x the work of one", lambda: _scale(_SECOND, "machine_ceiling", "ceiling")),
    (SCALING, "in that run was {:.2f}x", lambda: _scale(_WIDE, "machine_ceiling", "ceiling")),
    (SCALING, "({} against 85 forward passes", lambda: _scale(_WIDE, "machine_ceiling", "forwards_2_processes")),
]

REPORT = "docs/guide/report.md"
OWN = "docs/runs/audit-own-model/results.json"
CIFAR = "docs/runs/audit-cifar10-cpu/results.json"


def _own(*keys: Any) -> Any:
    return _json(OWN, *keys)


def _detectable_pct() -> float:
    from labelleak.risk import detectable_tpr

    n = _own("attacks", _own("verdict", "strongest_attack"), "n_members")
    return 100 * float(detectable_tpr(n, level=_own("verdict", "per_attack_confidence")))


_HSJA = ("attacks", "boundary-hsja")
_HSJA_1 = (*_HSJA, "tpr_at_fpr_exact", "0.01")
FIGURES += [
    (REPORT, "train accuracy {:.3f}, test accuracy 0.540", lambda: _json(CIFAR, "target", "train_accuracy")),
    (REPORT, "train accuracy 1.000, test accuracy {:.3f}", lambda: _json(CIFAR, "target", "test_accuracy")),
    (REPORT, "the own model: {:.3f} on the members", lambda: _own("utility", "members_accuracy")),
    (REPORT, "1.000 on the members, {:.3f} on the", lambda: _own("utility", "nonmembers_accuracy")),
    (REPORT, "lies above 1%; {:.1f}% for 400 members", _detectable_pct),
    (REPORT, "risk {}, eps_LB 0.25", lambda: _own("verdict", "risk_level")),
    (REPORT, "risk medium, eps_LB {:.2f}", lambda: _own("verdict", "eps_lb")),
    (REPORT, "and {} of 400 members flagged at 1% FPR", lambda: _own("exposed", "members_flagged_by_any", "0.01")),
    (REPORT, '["queries_asked"]`: {} for the own model', lambda: _own("queries_asked")),
    (REPORT, "flags {:.1f}% of 200 held-out non-members", lambda: 100 * _own(*_HSJA_1, "fpr")),
    (REPORT, "held-out non-members, {:.1f}% to", lambda: 100 * _own(*_HSJA_1, "fpr_ci")[0]),
    (REPORT, 'non-members, 0.1% to {:.1f}%")', lambda: 100 * _own(*_HSJA_1, "fpr_ci")[1]),
    (REPORT, "at 1% FPR {:.1f}% of\nmembers are exposed", lambda: 100 * _own(*_HSJA_1, "tpr")),
    (REPORT, "(interval {:.1f}% to 2.5%, which", lambda: 100 * _own(*_HSJA_1, "tpr_ci")[0]),
    (REPORT, "(interval 0.3% to {:.1f}%, which", lambda: 100 * _own(*_HSJA_1, "tpr_ci")[1]),
    (REPORT, "named transfer, whose AUC is {:.3f}", lambda: _own("attacks", "transfer", "auc")),
    (REPORT, "and its AUC is {:.3f} (interval", lambda: _own(*_HSJA, "auc")),
    (REPORT, "(interval {:.3f} to 0.604)", lambda: _own(*_HSJA, "auc_ci")[0]),
    (REPORT, "(interval 0.525 to {:.3f})", lambda: _own(*_HSJA, "auc_ci")[1]),
    (REPORT, "score-loss: AUC {:.3f});", lambda: _json(CIFAR, "attacks", "score-loss", "auc")),
    (REPORT, "eps_LB = {:.3f} at delta 1e-05 from 400 of 800", lambda: _own("verdict", "eps_lb")),
    (REPORT, "strongest attack {}: its threshold", lambda: _own("verdict", "strongest_attack")),
    (REPORT, "its threshold flags {} of 200 evaluation members", lambda: _own("verdict", "bound", "tp")),
    (REPORT, "evaluation members but only {} of 200 non-members", lambda: _own("verdict", "bound", "fp")),
    (REPORT, "the complementary form `{}` gave it", lambda: _own("verdict", "bound", "form")),
    (REPORT, "evaluation members and {} of 200", lambda: _own("verdict", "bound", "fp")),
    (REPORT, "and the form `{}`", lambda: _own("verdict", "bound", "form")),
    (REPORT, "{} of 20 right guesses would give 1.280", lambda: _own("verdict", "one_run", "correct")),
    (REPORT, "19 of {} right guesses", lambda: _own("verdict", "one_run", "guesses")),
    (REPORT, "right guesses would give {:.3f}", lambda: _own("verdict", "one_run", "eps_lb_if_random")),
    (REPORT, "boundary-hsja reads {:.3f} at 95%", lambda: _own(*_HSJA, "epsilon", "eps_lb")),
    (REPORT, "non-members) and {:.3f} at 98.3%", lambda: _own("verdict", "per_attack_eps_lb", "boundary-hsja")),
    (REPORT, "and 0.252 at {:.1f}%.", lambda: 100 * _own("verdict", "per_attack_confidence")),
    (REPORT, "(its threshold {:.3f} flags", lambda: _own(*_HSJA, "epsilon", "threshold")),
    (REPORT, "flags 200 of 200 members and {} of 200 non-members)", lambda: _own(*_HSJA, "epsilon", "fp")),
    (REPORT, "class 5 leaks most (AUC {:.3f} on 44", lambda: _own(*_HSJA, "slices", "by_class", "5", "auc")),
    (REPORT, "0.709 on {} members", lambda: _own(*_HSJA, "slices", "by_class", "5", "n_members")),
    (REPORT, "44 members and {} non-members)", lambda: _own(*_HSJA, "slices", "by_class", "5", "n_nonmembers")),
    (REPORT, "p-value possible is 1/251, {:.4f}", lambda: 1 / (1 + _json(CIFAR, "attacks", "gap", "n_nonmembers"))),
    (
        REPORT,
        "CIFAR-10 run {} of\n  250 members are flagged at 1% FPR",
        lambda: _json(CIFAR, "exposed", "members_flagged_by_any", "0.01"),
    ),
    (REPORT, "boundary-hsja: AUC {:.3f} [0.818", lambda: _json(CIFAR, "attacks", "boundary-hsja", "auc")),
    (REPORT, "AUC 0.856 [{:.3f}, 0.890]", lambda: _json(CIFAR, "attacks", "boundary-hsja", "auc_ci")[0]),
    (REPORT, "AUC 0.856 [0.818, {:.3f}]", lambda: _json(CIFAR, "attacks", "boundary-hsja", "auc_ci")[1]),
    (
        REPORT,
        "[0.818, 0.890], TPR at 1% FPR {:.3f}",
        lambda: _json(CIFAR, "attacks", "boundary-hsja", "tpr_at_fpr", "0.01"),
    ),
    (REPORT, "the own model's: train {:.3f}, test 0.9475", lambda: _own("shadow", "train_accuracy")),
    (REPORT, "train 0.995, test {:g}", lambda: _own("shadow", "test_accuracy")),
    (REPORT, "boundary-hsja: {} for the", lambda: _own(*_HSJA, "data_free", "noise_queries")),
]


@pytest.mark.parametrize(("page", "printed", "source"), FIGURES, ids=[f"{p}:{t}" for p, t, _ in FIGURES])
def test_a_key_figure_in_the_docs_is_the_one_in_its_result_file(page, printed, source):
    text = (ROOT / page).read_text()
    expected = printed.format(source())
    assert expected in text, f"{page} should say {expected!r} (from its result file)"


STANDARD = "docs/runs/reproduce-lowfpr-standard-cpu/lowfpr.csv"


COMBINED = "docs/runs/reproduce-lowfpr-combined-cpu/lowfpr.csv"


def _standard_cells(attack: str, path: str = STANDARD) -> str:
    """The TPR at 1% FPR and AUC cells of one row of a low-fpr.md table, from its run's csv."""
    with (ROOT / path).open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["attack"] == attack)
    tpr = f"{float(row['tpr@1%']):.3f} [{float(row['tpr@1%_low']):.3f}, {float(row['tpr@1%_high']):.3f}]"
    return f"{tpr} | {float(row['auc']):.3f} [{float(row['auc_low']):.3f}, {float(row['auc_high']):.3f}] |"


@pytest.mark.parametrize(
    "attack",
    ["gap", "oslo", "lira", "lira-offline", "dhattack", "yoqo", "boundary-hsja", "boundary-qeba", "dhattack-guided"],
)
def test_the_standard_references_table_is_its_committed_run(attack):
    assert _standard_cells(attack) in (ROOT / "docs/low-fpr.md").read_text(), attack


DEFEND_DIGITS = "docs/runs/defend-digits/matrix.md"


@pytest.mark.parametrize("defense", ["none", "early-stopping=3", "advreg=1", "dp=8", "round=1"])
def test_the_digits_defense_table_is_its_committed_matrix(defense):
    row = next(line for line in (ROOT / DEFEND_DIGITS).read_text().splitlines() if line.startswith(f"| {defense} |"))
    assert row in (ROOT / "docs/defenses.md").read_text(), defense


@pytest.mark.parametrize("defense", ["none", "public=500", "dp=8", "dp=8+public=500"])
def test_the_public_pretraining_table_is_its_committed_matrix(defense):
    with (ROOT / "docs/runs/defend-digits-public/matrix.csv").open() as fh:
        r = next(r for r in csv.DictReader(fh) if r["defense"] == defense)
    eps = f"{float(r['epsilon']):.2f}" if r["epsilon"] else "-"
    row = f"| {defense} | {float(r['test_accuracy']):.3f} | {eps} | {float(r['gap.auc']):.3f} |"
    assert row in (ROOT / "docs/defenses.md").read_text(), row


@pytest.mark.parametrize("defense", ["none", "early-stopping=5", "early-stopping=1"])
def test_the_early_stopping_rerun_table_is_its_committed_run(defense):
    with (ROOT / "docs/runs/reproduce-defenses-es-cpu/defenses.csv").open() as fh:
        r = {k: v for k, v in next(r for r in csv.DictReader(fh) if r["defense"] == defense).items()}
    f = {k: float(v) for k, v in r.items() if v and k.endswith(("accuracy", "gap", ".auc", "_low", "_high", "_roc"))}
    hsja = f"{f['boundary-hsja.auc']:.3f} [{f['boundary-hsja.auc_low']:.3f}, {f['boundary-hsja.auc_high']:.3f}]"
    t = "boundary-hsja.tpr@1%"
    tpr = f"{f[t + '_roc']:.3f} [{f[t + '_low']:.3f}, {f[t + '_high']:.3f}]"
    head = f"| {defense} | {f['test_accuracy']:.3f} | {f['train_accuracy']:.3f} | {f['gap']:.3f} |"
    text = (ROOT / "docs/defenses.md").read_text()
    assert head in text and f"| {f['gap.auc']:.3f} | {hsja} | {tpr} | {f['score-loss.auc']:.3f} |" in text


def test_the_combined_signals_row_is_its_committed_run():
    with (ROOT / "docs/runs/reproduce-lowfpr-combined-cpu/lira_ratio.csv").open() as fh:
        r = next(r for r in csv.DictReader(fh) if r["attack"] == "boundary-lira-combined")
    ratio = f"{float(r['ratio@1%']):.3f} [{float(r['ratio@1%_low']):.3f}, {float(r['ratio@1%_high']):.3f}]"
    row = f"| boundary-lira-combined | 200 + 200 | {_standard_cells('boundary-lira-combined', COMBINED)}"
    text = (ROOT / "docs/low-fpr.md").read_text()
    assert row in text and f"| {ratio} | **met** |" in text


@pytest.mark.parametrize("defense", ["none", "round=1", "label-noise=0.1", "hamp=0.9"])
def test_the_cifar_side_by_side_is_its_committed_matrices(defense):
    cells = []
    for mode in ("adaptive", "nonadaptive"):
        with (ROOT / f"docs/runs/defend-cifar10-{mode}/matrix.csv").open() as fh:
            r = next(r for r in csv.DictReader(fh) if r["defense"] == defense)
        cells.append(f"{float(r['lira.auc']):.3f} [{float(r['lira.auc_low']):.3f}, {float(r['lira.auc_high']):.3f}]")
    row = f"| {defense} | {float(r['test_accuracy']):.3f} | {cells[0]} | {cells[1]} | {float(r['gap.auc']):.3f} |"
    assert row in (ROOT / "docs/defenses.md").read_text(), row


def test_the_served_accuracy_of_label_randomisation_is_its_committed_run():
    # per-point results.json files are not committed (.gitignore): read the committed matrix
    rows = {r["defense"]: r for r in _json("docs/runs/defend-cifar10-served/matrix.json", "rows")}
    served, model = rows["label-noise=0.1"], rows["none"]
    text = (ROOT / "docs/defenses.md").read_text()
    assert f"right on {served['test_accuracy']:.3f} of the test split and {served['train_accuracy']:.3f}" in text
    assert f"the model's {model['test_accuracy']:.3f} and {model['train_accuracy']:.3f}" in text


GUIDED1000 = "docs/runs/reproduce-lowfpr-guided1000-cpu/{}.csv"


@pytest.mark.parametrize("attack", ["lira", "boundary-lira-guided"])
def test_the_full_candidate_guided_run_is_its_committed_run(attack):
    row = f"| {attack} | 1000 + 1000 | {_csv_row(GUIDED1000.format('lowfpr'), attack)['tpr@0.1%']:.3f} | "
    row += _standard_cells(attack, GUIDED1000.format("lowfpr"))
    assert row in (ROOT / "docs/low-fpr.md").read_text(), row


@pytest.mark.parametrize("k", [4, 16])
def test_the_full_candidate_ratio_and_the_k_table_are_their_committed_runs(k):
    text = (ROOT / "docs/low-fpr.md").read_text()
    r = _csv_row(GUIDED1000.format("lira_ratio"), "boundary-lira-guided")
    assert f"| {r['tpr@1%']:.3f} | {r['lira_tpr@1%']:.3f} | {r['ratio@1%']:.3f} [{r['ratio@1%_low']:.3f}, " in text
    k4 = f"docs/runs/reproduce-lowfpr-guided-k{k}-cpu/{{}}.csv"
    lira, guided = _csv_row(k4.format("lowfpr"), "lira"), _csv_row(k4.format("lowfpr"), "boundary-lira-guided")
    ratio = _csv_row(k4.format("lira_ratio"), "boundary-lira-guided")
    row = (
        f"| {k} | {lira['tpr@1%']:.3f} [{lira['tpr@1%_low']:.3f}, {lira['tpr@1%_high']:.3f}] | {lira['tpr@0.1%']:.3f} "
        f"| {guided['tpr@1%']:.3f} [{guided['tpr@1%_low']:.3f}, {guided['tpr@1%_high']:.3f}] "
        f"| {guided['auc']:.3f} [{guided['auc_low']:.3f}, {guided['auc_high']:.3f}] "
        f"| {ratio['ratio@1%']:.3f} [{ratio['ratio@1%_low']:.3f}, {ratio['ratio@1%_high']:.3f}] "
        f"| {guided['seconds']:.0f} s |"
    )
    assert row in text, row
    bench = _json("bench/results/reference-search/digits-cnn2.json")
    seq, batch = bench["one_after_another_seconds"], bench["all_at_once_seconds"]
    assert f"{seq:.2f} s one after another against {batch:.2f} s all at once, {seq / batch:.2f}x" in text
    assert bench["identical"] and bench["shared_cpus"] == "nothing else heavy ran"


TRAIN_DEFENSES = ["none", "l2=5e-3", "relaxloss=1.5", "advreg=1", "selena=4", "dp=8", "label-noise=0.1"]


@pytest.mark.parametrize("defense", TRAIN_DEFENSES)
def test_the_training_time_side_by_side_is_its_committed_runs(defense):
    """Issue 33, item 5: each row of the adaptive / non-adaptive table of training-time defenses from the two
    committed runs' per-defense results.json (label-only and score-loss columns equal in both modes) and the
    adaptive matrix's eps_LB."""
    runs = {m: _json(f"docs/runs/defend-cifar10-train-{m}/{defense}/results.json") for m in ("adaptive", "nonadaptive")}
    adaptive, other = runs["adaptive"], runs["nonadaptive"]
    assert adaptive["target"]["evaluation"] == "adaptive" and other["target"]["evaluation"] == "non-adaptive"

    def auc(r: dict[str, Any], attack: str) -> str:
        e = r["attacks"][attack]
        return f"{e['auc']:.3f} [{e['auc_ci'][0]:.3f}, {e['auc_ci'][1]:.3f}]"

    for attack in ("gap", "boundary-hsja", "score-loss"):
        assert adaptive["attacks"][attack]["auc"] == other["attacks"][attack]["auc"]
    t = adaptive["target"]
    served = t.get("served_test_accuracy")
    test = f"{served:.3f} (served)" if served is not None else f"{t['test_accuracy']:.3f}"
    eps = next(
        r for r in _json("docs/runs/defend-cifar10-train-adaptive/matrix.json", "rows") if r["defense"] == defense
    )
    row = (
        f"| {defense} | {test} | {t['train_accuracy']:.3f} | {auc(adaptive, 'lira')} | {auc(other, 'lira')} | "
        f"{adaptive['attacks']['gap']['auc']:.3f} | {auc(adaptive, 'boundary-hsja')} | "
        f"{adaptive['attacks']['score-loss']['auc']:.3f} | {eps['eps_lb']:.2f} |"
    )
    assert row in (ROOT / "docs/defenses.md").read_text(), row
