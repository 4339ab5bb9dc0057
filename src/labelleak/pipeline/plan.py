"""Experiment plans for ``labelleak reproduce``: a packaged YAML file turned into a list of audit configs.

A plan file has these keys (all but ``kind`` optional)::

    kind: sizes                  # which summary the results feed (see labelleak.pipeline.reproduce)
    description: ...
    claim: ...                   # the paper's claim the experiment tests
    audit: {dataset: cifar10, arch: cnn7}      # audit keys shared by every run and scale
    grid: {train_size: [100, 500]}             # one run per combination of these audit keys
    groups:                                    # within a grid point, one audit per group
      boundary: {attacks: [boundary-hsja], eval_size: 200}
    scales:
      cpu: {audit: {...}, grid: {...}, groups: {boundary: {...}}}   # merged over the above
      paper: {...}

A run's config is, from weakest to strongest: the defaults, ``audit``, the scale's ``audit``, the grid point,
the group, the user's overrides. An override whose key is a grid axis replaces that axis; ``GROUP.KEY`` changes
one group only; ``attacks`` keeps, in each group, the attacks listed (the others listed join the first group).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from labelleak._validation import read_utf8
from labelleak.errors import DataFileError, InvalidInputError, UnknownNameError
from labelleak.pipeline.config import AuditConfig, from_mapping
from labelleak.pipeline.setup.common import rows_beyond_split

SCALES = ("cpu", "paper")
_PLAN_KEYS = {"kind", "description", "claim", "audit", "grid", "groups", "scales"}
_SIZE_KEYS = ("train_size", "test_size", "shadow_size", "eval_size", "reserve_train")


@dataclass
class Run:
    """One audit of an experiment: its grid point, its group and the full config."""

    point: dict[str, Any]
    group: str
    config: AuditConfig

    @property
    def folder(self) -> str:
        parts = [f"{k}={'-'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in self.point.items()]
        return "/".join(["_".join(parts) or "base", self.group])


@dataclass
class Plan:
    name: str
    kind: str
    scale: str
    description: str
    claim: str
    runs: list[Run]
    pool: dict[str, Any] = field(default_factory=dict)


def experiment_names() -> list[str]:
    folder = resources.files("labelleak") / "configs" / "reproduce"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_plan_file(experiment: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(experiment)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise DataFileError(f"experiment file not found: {path}")
        name, text = path.stem, read_utf8(path, "experiment file")
    else:
        if experiment not in experiment_names():
            raise UnknownNameError(
                f"unknown experiment {experiment!r}; choose from {', '.join(experiment_names())} "
                "or give a .yaml plan file"
            )
        name = str(experiment)
        text = (resources.files("labelleak") / "configs" / "reproduce" / f"{name}.yaml").read_text()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DataFileError(f"experiment {name}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or "kind" not in raw:
        raise DataFileError(f"experiment {name}: expected a mapping with at least the key 'kind'")
    unknown = sorted(set(raw) - _PLAN_KEYS)
    if unknown:
        raise DataFileError(f"experiment {name}: unknown key(s) {unknown}; valid keys are {sorted(_PLAN_KEYS)}")
    return name, raw


def _scaled_part(raw: dict[str, Any], scale: str) -> dict[str, Any]:
    scales = raw.get("scales") or {}
    if scale not in SCALES:
        raise InvalidInputError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
    return scales.get(scale) or {}


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise InvalidInputError(f"grid axis {key}: expected a non-empty list, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _restrict_attacks(groups: dict[str, dict[str, Any]], attacks: Any) -> dict[str, dict[str, Any]]:
    """Keep the listed attacks in the groups that have them; the rest go to the first group; drop empty groups."""
    wanted = [a.strip() for a in attacks.split(",")] if isinstance(attacks, str) else list(attacks)
    placed: set[str] = set()
    kept: dict[str, dict[str, Any]] = {}
    for g, values in groups.items():
        mine = [a for a in wanted if a in (values.get("attacks") or [])]
        placed.update(mine)
        kept[g] = {**values, "attacks": mine}
    first = next(iter(kept))
    kept[first]["attacks"] += [a for a in wanted if a not in placed]
    return {g: v for g, v in kept.items() if v["attacks"]}


def load_plan(
    experiment: str | Path,
    *,
    scale: str = "cpu",
    overrides: dict[str, Any] | None = None,
    out: str | Path = "reproduce-out",
) -> Plan:
    """Read the plan of ``experiment`` (a packaged name or a YAML file) at ``scale`` into validated configs."""
    name, raw = _read_plan_file(experiment)
    scaled = _scaled_part(raw, scale)
    grid = {**(raw.get("grid") or {}), **(scaled.get("grid") or {})}
    planned_sizes = list(grid.get("train_size") or [])  # before the user's overrides
    overrides = dict(overrides or {})
    for key in list(overrides):
        if key in grid:
            value = overrides.pop(key)
            grid[key] = value if isinstance(value, list) else [value]
    groups_raw = raw.get("groups") or {"all": {}}
    groups = {g: {**(v or {}), **((scaled.get("groups") or {}).get(g) or {})} for g, v in groups_raw.items()}
    for key in [k for k in overrides if "." in k]:  # "boundary.queries": that group only
        group, _, sub = key.partition(".")
        if group not in groups:
            raise InvalidInputError(f"override {key}: no group {group!r}; groups are {', '.join(groups)}")
        groups[group][sub] = overrides.pop(key)
    if "attacks" in overrides:
        groups = _restrict_attacks(groups, overrides.pop("attacks"))
    base = {**(raw.get("audit") or {}), **(scaled.get("audit") or {})}
    if "train_size" in grid and "reserve_train" not in base:
        # all sizes share non-members and shadow data; a narrowed grid keeps the full plan's reserve, so that it
        # trains the same targets (same split, cached models, numbers comparable with the full experiment)
        base["reserve_train"] = max(planned_sizes + list(grid["train_size"]))
    runs = []
    for point in _grid_points(grid):
        for group, values in groups.items():
            run = Run(dict(point), group, AuditConfig())
            merged = {**base, **point, **values, **overrides}
            merged["out"] = str(Path(out) / run.folder)
            run.config = from_mapping(merged, source=f"experiment {name} ({scale}), run {run.folder}").validate()
            runs.append(run)
    return Plan(name, str(raw["kind"]), scale, str(raw.get("description", "")), str(raw.get("claim", "")), runs)


def _scaled_sizes(c: AuditConfig, factor: float, fixed: set[str], min_reserve: int = 0) -> dict[str, int]:
    """The sizes of ``c`` with the plan's ones scaled by ``factor`` (at least 2) and the user's (``fixed``) kept;
    the members' reserve is at least ``min_reserve`` (the largest target, which every run's split must share)."""
    sizes = {
        k: getattr(c, k) if k in fixed else max(2, int(getattr(c, k) * factor))
        for k in _SIZE_KEYS
        if getattr(c, k) is not None
    }
    if "reserve_train" in sizes:  # the members are cut from the reserve
        sizes["reserve_train"] = max(sizes["reserve_train"], sizes["train_size"], min_reserve)
    return sizes


def _need(sizes: dict[str, int]) -> int:
    """Samples a run's four parts take from the pool: its member block, its non-members and shadow-train plus
    shadow-test (an unset size follows ``train_size``); public and validation rows come on top."""
    train = sizes["train_size"]
    return (
        max(train, sizes.get("reserve_train", 0)) + sizes.get("test_size", train) + 2 * sizes.get("shadow_size", train)
    )


def fit_to_pool(plan: Plan, n_pool: int, *, fixed: set[str] | frozenset[str] = frozenset()) -> Plan:
    """Shrink the plan's sizes by one common factor when the pool is too small for the largest run.

    Another dataset than the plan's (``--dataset``/``--data``) may hold fewer samples; scaling all sizes
    together keeps the experiment's proportions. Sizes named in ``fixed`` (the user's own ``--set``) are kept
    as given; an error says so when they alone do not fit. The factor (the largest that fits, found by bisection
    on the sizes as they will be cut) is recorded in ``plan.pool``.
    """
    fixed = set(fixed) & set(_SIZE_KEYS)
    floor = max(r.config.train_size for r in plan.runs) if "train_size" in fixed else 0
    sized = lambda r, f: _scaled_sizes(r.config, f, fixed, floor)  # noqa: E731

    def need(r: Run, f: float) -> int:  # the four parts, then the public and validation rows beyond them
        sizes = sized(r, f)
        return _need(sizes) + rows_beyond_split(r.config, sizes["train_size"])

    fits = lambda f: all(need(r, f) <= n_pool for r in plan.runs)  # noqa: E731
    largest = max(need(r, 1.0) for r in plan.runs)
    factor = 1.0
    if not fits(1.0):
        if not fits(0.0):
            smallest = max(need(r, 0.0) for r in plan.runs)
            raise InvalidInputError(
                f"the sizes set with --set ({', '.join(sorted(fixed)) or 'none'}) need "
                f"{smallest} samples with the plan's other sizes at their minimum, but the "
                f"dataset's pool holds {n_pool}"
            )
        low, high = 0.0, 1.0
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if fits(mid) else (low, mid)
        factor = low
    plan.pool = {"n_pool": n_pool, "largest_run_needs": largest, "factor": factor, "kept_as_set": sorted(fixed)}
    if factor >= 1.0:
        return plan
    for run in plan.runs:
        run.config = run.config.replace(**sized(run, factor))
        run.point = {k: getattr(run.config, k) if k in _SIZE_KEYS else v for k, v in run.point.items()}
    return plan
