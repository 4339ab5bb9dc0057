"""Setup of a target labelleak trains: dataset -> four-way split -> the target (with its defense) and the
adversary's shadow model, trained once and then loaded from the model store.

The target's defense is known here, so the evaluation is adaptive unless ``non_adaptive``: the shadow model trains
with the defense and answers through its output-time part, and the attacks' own models do the same
(``AuditSetup.adversary_defense``, which the audit passes into every attack's shadow recipe)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch

from labelleak.attacks.base import ShadowData
from labelleak.data import Dataset, Split, SplitSizes, four_way_split, public_part, validation_part
from labelleak.data.cache import DatasetCache, load_prepared
from labelleak.data.layout import trained_layout
from labelleak.data.split import canary_part
from labelleak.defenses import DefensePlan, parse_defense
from labelleak.models import ModelSpec, ModelStore, TrainedModel, build_model, train_or_load
from labelleak.models.training import validation_size
from labelleak.oracle.defended import serve
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.common import AuditSetup, auto_arch, check_pool, train_settings


def _adversary_defense(cfg: AuditConfig, target: TrainedModel) -> str:
    """The defense the adaptive adversary's recipe trains with: the target's, and DP-SGD's clipping norm and
    learning rate as the target's tuning chose them (the recipe's models have no tuning rows: they would train
    with clip 1 and the audit's rate, not the target's)."""
    dp = target.report.get("dp") or {}
    if dp.get("tuning_data") in (None, "off"):
        return cfg.defense
    return f"{cfg.defense}+dp-clip={float(dp['max_grad_norm'])!r}+dp-lr={float(dp['lr'])!r}"


def _target_record(
    cfg: AuditConfig,
    arch: str,
    target: TrainedModel,
    *,
    n_val: int,
    adaptive: bool,
    pretrained: TrainedModel | None,
    public: int,
    coins: np.ndarray,
) -> dict[str, Any]:
    """``results["target"]`` of a target labelleak trained: its rows, accuracies, defense and privacy cost."""
    return {
        "arch": arch,
        # the members part, all of it, and the canaries whose coin came up; train_accuracy is on these rows
        "trained_rows": target.trained_rows,
        **({"canaries": {"candidates": len(coins), "trained_on": int(coins.sum())}} if len(coins) else {}),
        **({"validation_rows": n_val} if n_val else {}),
        "train_accuracy": target.train_accuracy,
        "test_accuracy": target.test_accuracy,
        "model_dir": str(target.path),
        "loaded_from_cache": target.cached,
        "defense": cfg.defense,
        "evaluation": "adaptive" if adaptive else "non-adaptive",  # does the adversary know the defense?
        "epsilon": target.report.get("epsilon"),
        "dp_tuning": (target.report.get("dp") or {}).get("tuning_data"),  # private: epsilon withheld
        "delta": target.report.get("delta"),
        "epochs_run": target.report.get("epochs_run"),
        **(
            {"public_pretraining": {"samples": public, "test_accuracy": pretrained.test_accuracy}}
            if pretrained is not None
            else {}
        ),
    }


class _Models(NamedTuple):
    """The models a trained-target audit trains (or loads): the target, the adversary's shadow model, the owner's
    public pre-trained model (or None), the target's validation rows, and the canaries with their coins."""

    target: TrainedModel
    shadow: TrainedModel
    pretrained: TrainedModel | None
    n_val: int
    canaries: np.ndarray
    coins: np.ndarray


def _train_models(
    cfg: AuditConfig,
    dataset: Dataset,
    x: np.ndarray,
    fingerprint: str,
    sizes: SplitSizes,
    split: Split,
    plan: DefensePlan,
    spec: ModelSpec,
    defended_spec: ModelSpec,
) -> _Models:
    """Train (or load from the cache) the public pre-trained model, the target and, adaptively with the target's
    defense, the shadow model."""
    store, y = ModelStore(cfg.cache_dir), dataset.y
    settings = train_settings(cfg)
    pretrained = None
    if plan.public:  # the owner's public pre-training: ordinary training on data outside the four parts
        public_idx = public_part(len(dataset), sizes, plan.public, seed=cfg.seed, reserve_train=cfg.reserve_train)
        pretrained = train_or_load(
            store, x, y, fingerprint, defended_spec, settings, public_idx, split.target_test,
            role="public pre-training", progress=cfg.progress,
        )  # fmt: skip
    target_settings = replace(settings, **plan.train)
    # early stopping and advreg validate on rows beyond the four parts (after the public ones): never a candidate
    n_val = validation_size(len(split.target_train), target_settings)
    val_idx = (
        validation_part(len(dataset), sizes, n_val, after=plan.public, seed=cfg.seed, reserve_train=cfg.reserve_train)
        if n_val
        else None
    )
    # the one-run audit's canaries come after those rows; the target trains on the ones whose coin came up
    canaries, coins = (
        canary_part(
            len(dataset), sizes, cfg.canaries, after=plan.public + n_val, seed=cfg.seed, reserve_train=cfg.reserve_train
        )
        if cfg.canaries
        else (np.zeros(0, np.int64), np.zeros(0, bool))
    )
    target = train_or_load(
        store,
        x,
        y,
        fingerprint,
        defended_spec,
        target_settings,
        np.concatenate([split.target_train, canaries[coins]]),
        split.target_test,
        role="target",
        progress=cfg.progress,
        init=pretrained,
        validation_idx=val_idx,
    )
    # adaptive (the default): the adversary knows the defense and trains its shadow model with it, starting from
    # the public model when there is one (public data is the adversary's too) and validating on the target's
    # validation rows (never candidates) when the defense needs some; non-adaptive: the ordinary way
    adaptive = not cfg.non_adaptive
    shadow = train_or_load(
        store,
        x,
        y,
        fingerprint,
        defended_spec if adaptive else spec,
        target_settings if adaptive else settings,
        split.shadow_train,
        split.shadow_test,
        role="shadow",
        progress=cfg.progress,
        init=pretrained if adaptive else None,
        validation_idx=val_idx if adaptive else None,
    )
    return _Models(target, shadow, pretrained, n_val, canaries, coins)


def prepare_local(cfg: AuditConfig, datasets: DatasetCache | None = None) -> AuditSetup:
    """Load data (through ``datasets`` when given), split it four ways, and train (or load) the target and the
    adversary's shadow model."""
    dataset, x, fingerprint = (datasets.load if datasets else load_prepared)(cfg.dataset, cfg.data)
    check_pool(cfg, len(dataset))
    shadow_size = cfg.shadow_size or cfg.train_size
    test_size = cfg.test_size or cfg.train_size
    sizes = SplitSizes(cfg.train_size, test_size, shadow_size, shadow_size)
    split = four_way_split(len(dataset), sizes, seed=cfg.seed, reserve_train=cfg.reserve_train)
    plan = parse_defense(cfg.defense, seed=cfg.seed)
    spec = ModelSpec(auto_arch(cfg, dataset.input_shape), dataset.input_shape, dataset.n_classes, cfg.width)
    defended_spec = replace(spec, **plan.spec)
    build_model(defended_spec)  # fail early on an architecture that cannot take this input
    if cfg.shadow_arch:
        build_model(replace(spec, arch=cfg.shadow_arch))
    adaptive = not cfg.non_adaptive
    y = dataset.y
    models = _train_models(cfg, dataset, x, fingerprint, sizes, split, plan, spec, defended_spec)
    target, shadow, pretrained = models.target, models.shadow, models.pretrained
    # as --estimate counts: members, non-members, then the canaries (members by their coins)
    layout = trained_layout(cfg.train_size, cfg.test_size, cfg.shadow_size, cfg.eval_size, cfg.canaries)
    n_members, n_nonmembers = layout.members, layout.nonmembers
    idx = np.concatenate([split.target_train[:n_members], split.target_test[:n_nonmembers], models.canaries])

    shape, classes = dataset.input_shape, dataset.n_classes
    served = serve(target.model, plan, input_shape=shape, n_classes=classes, seed=cfg.seed)
    record = _target_record(
        cfg,
        spec.arch,
        target,
        n_val=models.n_val,
        adaptive=adaptive,
        pretrained=pretrained,
        public=plan.public,
        coins=models.coins,
    )
    if plan.label_noise:  # the answers users get are the votes, not the model's argmax: their accuracy is the utility
        # read on a twin (same keyed noise, same answers): the auditor's measurement is no adversary's query, and
        # the target's counter, which --max-total-queries caps, starts at zero
        twin = serve(target.model, plan, input_shape=shape, n_classes=classes, seed=cfg.seed)
        trained_rows = np.concatenate([split.target_train, models.canaries[models.coins]])
        for key, rows in (("served_train_accuracy", trained_rows), ("served_test_accuracy", split.target_test)):
            labels = np.asarray(twin.labels.predict_labels(torch.as_tensor(x[rows])))
            record[key] = float(np.mean(labels == y[rows]))
    # adaptive: the shadow model answers through the same mechanisms (label randomisation, HAMP's scores, the
    # output defenses), keyed by its own seed, not the target's key; non-adaptive: as the plain model answers
    shadow_plan = parse_defense(cfg.defense if adaptive else "none", seed=cfg.seed + 1)
    shadow_served = serve(shadow.model, shadow_plan, input_shape=shape, n_classes=classes, seed=cfg.seed + 1)

    return AuditSetup(
        dataset={
            "name": dataset.name,
            "source": dataset.source,
            "n_pool": len(dataset),
            "n_classes": dataset.n_classes,
            "input_shape": list(dataset.input_shape),
        },
        split=split.sizes(),
        target=record,
        shadow={
            "train_accuracy": shadow.train_accuracy,
            "test_accuracy": shadow.test_accuracy,
            "defense": cfg.defense if adaptive else "none",
        },
        arch=cfg.shadow_arch or spec.arch,
        oracle=served.labels,
        shadow_oracle=shadow_served.labels,
        sample_index=idx,
        x=x[idx],
        y=y[idx],
        is_member=np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool), models.coins],
        shadow_data=ShadowData(
            x[split.shadow_train], y[split.shadow_train], x[split.shadow_test], y[split.shadow_test]
        ),
        score_oracle=served.scores,
        shadow_score_oracle=shadow_served.scores,
        adversary_defense=_adversary_defense(cfg, target) if adaptive else "none",
        adversary_init=str(pretrained.path) if adaptive and pretrained is not None else None,
        canary=np.r_[np.zeros(n_members + n_nonmembers, bool), np.ones(cfg.canaries, bool)] if cfg.canaries else None,
    )
