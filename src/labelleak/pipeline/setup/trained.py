"""Setup of a target labelleak trains: dataset -> four-way split -> the target (with its defense) and the
adversary's shadow model, trained once and then loaded from the model store.

The target's defense is known here, so the evaluation is adaptive unless ``non_adaptive``: the shadow model trains
with the defense and answers through its output-time part, and the attacks' own models do the same
(``AuditSetup.adversary_defense``, which the audit passes into every attack's shadow recipe)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from labelleak.attacks.base import ShadowData
from labelleak.data import SplitSizes, four_way_split, public_part, validation_part
from labelleak.data.cache import DatasetCache, load_prepared
from labelleak.defenses import parse_defense
from labelleak.models import ModelSpec, ModelStore, TrainedModel, build_model, train_or_load
from labelleak.models.training import validation_size
from labelleak.oracle import TorchOracle, TorchScoreOracle
from labelleak.oracle.hamp import HampScoreOracle
from labelleak.oracle.scores import DefendedScoreOracle
from labelleak.oracle.smoothed import smooth_labels
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.setup.common import AuditSetup, auto_arch, train_settings


def prepare_local(cfg: AuditConfig, datasets: DatasetCache | None = None) -> AuditSetup:
    """Load data (through ``datasets`` when given), split it four ways, and train (or load) the target and the
    adversary's shadow model."""
    dataset, x, fingerprint = (datasets.load if datasets else load_prepared)(cfg.dataset, cfg.data)
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
    target = train_or_load(
        store,
        x,
        y,
        fingerprint,
        defended_spec,
        target_settings,
        split.target_train,
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
    shadow_output = replace(plan.output, seed=cfg.seed + 1)  # the mechanism, not the target's key
    n_members = min(cfg.eval_size or cfg.train_size, cfg.train_size)
    n_nonmembers = min(cfg.eval_size or test_size, test_size)
    idx = np.concatenate([split.target_train[:n_members], split.target_test[:n_nonmembers]])

    def oracle(kind: type[TorchOracle], m: TrainedModel) -> TorchOracle:
        return kind(m.model, input_shape=dataset.input_shape, n_classes=dataset.n_classes)

    # label randomisation answers both labels and (vote-share) scores; a HAMP-trained target's scores are HAMP's
    # output modification unless another output defense is named; the output defenses act on probabilities
    smoothed = None
    if plan.label_noise:
        smoothed = smooth_labels(oracle(TorchOracle, target), plan.label_noise, seed=cfg.seed)
    shape, classes = dataset.input_shape, dataset.n_classes
    target_scores = (
        HampScoreOracle(target.model, input_shape=shape, n_classes=classes, seed=cfg.seed)
        if "hamp" in plan.train and plan.output.kind == "none"
        else DefendedScoreOracle(target.model, defense=plan.output, input_shape=shape, n_classes=classes)
    )

    return AuditSetup(
        dataset={
            "name": dataset.name,
            "source": dataset.source,
            "n_pool": len(dataset),
            "n_classes": dataset.n_classes,
            "input_shape": list(dataset.input_shape),
        },
        split=split.sizes(),
        target={
            "arch": spec.arch,
            "trained_rows": target.trained_rows,  # the members part, all of it; train_accuracy is on these rows
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
                {"public_pretraining": {"samples": plan.public, "test_accuracy": pretrained.test_accuracy}}
                if pretrained is not None
                else {}
            ),
        },
        shadow={
            "train_accuracy": shadow.train_accuracy,
            "test_accuracy": shadow.test_accuracy,
            "defense": cfg.defense if adaptive else "none",
        },
        arch=cfg.shadow_arch or spec.arch,
        oracle=smoothed or oracle(TorchOracle, target),
        shadow_oracle=oracle(TorchOracle, shadow),
        sample_index=idx,
        x=x[idx],
        y=y[idx],
        is_member=np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)],
        shadow_data=ShadowData(
            x[split.shadow_train], y[split.shadow_train], x[split.shadow_test], y[split.shadow_test]
        ),
        score_oracle=smoothed or target_scores,
        shadow_score_oracle=(
            DefendedScoreOracle(
                shadow.model, defense=shadow_output, input_shape=dataset.input_shape, n_classes=dataset.n_classes
            )
            if adaptive and plan.output.kind != "none"
            else oracle(TorchScoreOracle, shadow)
        ),
        adversary_defense=cfg.defense if adaptive else "none",
    )
