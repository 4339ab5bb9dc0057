"""Audit setup: everything the attacks need, for a local target (dataset -> split -> trained models) or a
remote one (candidate files + an HTTP oracle). Both end as the same :class:`AuditSetup`."""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from labelleak.attacks.base import ShadowData
from labelleak.data import Dataset, SplitSizes, four_way_split, load_dataset, public_part, validation_part
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, ModelStore, TrainSettings, accuracy, build_model, init_model, model_key
from labelleak.models.training import default_device, train_with_report, validation_size
from labelleak.oracle import LabelOracle, TorchOracle, TorchScoreOracle
from labelleak.oracle.defenses import DefendedScoreOracle
from labelleak.pipeline.config import AuditConfig
from labelleak.pipeline.defenses import parse_defense

if TYPE_CHECKING:  # the remote oracles need the serve extra (httpx): imported where a remote audit starts
    from labelleak.oracle.remote import RemoteOracle


@dataclass
class TrainedModel:
    model: nn.Module
    spec: ModelSpec
    train_accuracy: float
    test_accuracy: float
    path: Path
    cached: bool
    report: dict[str, Any] = field(default_factory=dict)
    trained_rows: int = 0  # rows the optimiser trained on: all of train_idx (validation rows come from elsewhere)


@dataclass
class AuditSetup:
    """The target seen through oracles, the candidates, and the adversary's own data and shadow model."""

    dataset: dict[str, Any]
    split: dict[str, int]
    target: dict[str, Any]
    shadow: dict[str, Any]
    arch: str  # architecture the adversary uses for its own models (the target's, when known)
    oracle: LabelOracle
    shadow_oracle: LabelOracle  # the adversary's shadow model, trained on shadow-train with true labels
    sample_index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    is_member: np.ndarray
    shadow_data: ShadowData
    score_oracle: LabelOracle | None = None  # the stronger threat model (score-based baselines only)
    shadow_score_oracle: LabelOracle | None = None
    closers: list = field(default_factory=list)
    inputs_fingerprint: str | None = None  # the auditor's own data (and target), keyed into checkpoints
    remote: RemoteOracle | None = None  # the remote target's oracle, for its spend statistics

    @property
    def kind(self) -> str:
        """The label-only target as an error message names it (a target without a score oracle)."""
        if self.remote is not None:
            return "a remote label-only target"
        if self.target.get("model"):
            return f"the model file {self.target['model']} (audited through its labels)"
        return "this label-only target"

    @property
    def reference_size(self) -> int:
        """Rows each reference model trains on, to mimic the target: the rows it was trained on
        (``target["trained_rows"]``) when labelleak trained it, else the number of member candidates."""
        trained = self.target.get("trained_rows")
        return int(trained) if trained else int(self.is_member.sum())


def auto_arch(cfg: AuditConfig, input_shape: tuple[int, ...]) -> str:
    """``auto`` means mlp for tabular data and small images, cnn7 for images of 16x16 and more."""
    if cfg.arch != "auto":
        return cfg.arch
    return "cnn7" if len(input_shape) == 3 and min(input_shape[1:]) >= 16 else "mlp"


def _indices_hash(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def train_or_load(
    store: ModelStore,
    x: np.ndarray,
    y: np.ndarray,
    fingerprint: str,
    spec: ModelSpec,
    settings: TrainSettings,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    role: str,
    progress: bool,
    init: TrainedModel | None = None,
    validation_idx: np.ndarray | None = None,
) -> TrainedModel:
    """Load the model trained on ``train_idx`` with these settings from ``store``, or train and save it; with
    ``init``, training starts from that model's weights (its cache key joins this model's).

    ``validation_idx``: the held-out rows of early stopping and adversarial regularisation (part of the cache key
    when given), so that the optimiser trains on every row of ``train_idx``.
    """
    if init is not None:
        settings = replace(settings, init=init.path.name)
    held = {} if validation_idx is None else {"validation": _indices_hash(validation_idx)}
    key = model_key(
        dataset=fingerprint, train=_indices_hash(train_idx), spec=spec.to_dict(), settings=settings.to_dict(), **held
    )
    hit = store.get(key)
    if hit is not None:
        model, cached, report = hit[0], True, dict(hit[2].get("report", {}))
    else:
        model = (
            copy.deepcopy(init.model).train()
            if init is not None
            else init_model(lambda: build_model(spec), settings.seed)
        )
        model, rep = train_with_report(
            model,
            x[train_idx],
            y[train_idx],
            settings,
            n_classes=spec.n_classes,
            description=f"training {role} ({spec.arch})",
            progress=progress,
            validation=None if validation_idx is None else (x[validation_idx], y[validation_idx]),
        )
        cached, report = False, dict(vars(rep))
    trained_rows = int(report.get("trained_rows", len(train_idx)))  # models cached before it was reported: all
    assert trained_rows == len(train_idx), (role, trained_rows, len(train_idx))  # accuracy below is on those rows
    model.to(default_device())  # a GPU when there is one, whether the model was trained now or loaded
    trained = TrainedModel(
        model,
        spec,
        accuracy(model, x[train_idx], y[train_idx]),
        accuracy(model, x[test_idx], y[test_idx]),
        store.path(key),
        cached,
        report,
        trained_rows,
    )
    if not cached:
        store.put(
            key,
            model,
            spec,
            {
                "role": role,
                "train_accuracy": trained.train_accuracy,
                "test_accuracy": trained.test_accuracy,
                "settings": settings.to_dict(),
                "report": report,
            },
        )
    return trained


def _settings(cfg: AuditConfig) -> TrainSettings:
    return TrainSettings(
        epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, lr_schedule=cfg.lr_schedule
    )


class DatasetCache:
    """The last dataset loaded, with its float features and fingerprint, held by a caller that runs a series of
    audits on the same file (``labelleak reproduce``, ``labelleak defend``) so that it is read and converted once.

    It belongs to that caller and goes away with it; a changed file (path, size or modification time) is
    loaded again.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: tuple[Dataset, np.ndarray, str] | None = None

    def load(self, name: str, path: str | None) -> tuple[Dataset, np.ndarray, str]:
        stamp = None
        if path is not None and Path(path).exists():
            st = Path(path).stat()
            stamp = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
        key = (name, path, stamp)
        if self._value is None or key != self._key:
            self._key, self._value = None, None  # free the old one before loading the next
            self._value, self._key = load_prepared(name, path), key
        return self._value


def load_prepared(name: str, path: str | None) -> tuple[Dataset, np.ndarray, str]:
    """The dataset, its float features and its fingerprint."""
    dataset = load_dataset(name, path)
    return dataset, dataset.features(), dataset.fingerprint()


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
    settings = _settings(cfg)
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
    # the adversary trains its shadow model the ordinary way: it does not know the defense
    shadow = train_or_load(
        store,
        x,
        y,
        fingerprint,
        spec,
        settings,
        split.shadow_train,
        split.shadow_test,
        role="shadow",
        progress=cfg.progress,
    )
    n_members = min(cfg.eval_size or cfg.train_size, cfg.train_size)
    n_nonmembers = min(cfg.eval_size or test_size, test_size)
    idx = np.concatenate([split.target_train[:n_members], split.target_test[:n_nonmembers]])

    def oracle(kind: type[TorchOracle], m: TrainedModel) -> TorchOracle:
        return kind(m.model, input_shape=dataset.input_shape, n_classes=dataset.n_classes)

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
            "epsilon": target.report.get("epsilon"),
            "delta": target.report.get("delta"),
            "epochs_run": target.report.get("epochs_run"),
            **(
                {"public_pretraining": {"samples": plan.public, "test_accuracy": pretrained.test_accuracy}}
                if pretrained is not None
                else {}
            ),
        },
        shadow={"train_accuracy": shadow.train_accuracy, "test_accuracy": shadow.test_accuracy},
        arch=cfg.shadow_arch or spec.arch,
        oracle=oracle(TorchOracle, target),
        shadow_oracle=oracle(TorchOracle, shadow),
        sample_index=idx,
        x=x[idx],
        y=y[idx],
        is_member=np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)],
        shadow_data=ShadowData(
            x[split.shadow_train], y[split.shadow_train], x[split.shadow_test], y[split.shadow_test]
        ),
        score_oracle=DefendedScoreOracle(
            target.model, defense=plan.output, input_shape=dataset.input_shape, n_classes=dataset.n_classes
        ),
        shadow_score_oracle=oracle(TorchScoreOracle, shadow),
    )


def connect_remote(cfg: AuditConfig) -> RemoteOracle:
    """The oracle for ``cfg``'s remote target, in its protocol (labelleak, v2 or a REST spec)."""
    from labelleak.oracle.remote.labelleak import LabelleakOracle
    from labelleak.oracle.remote.rest import RestOracle, RestSpec
    from labelleak.oracle.remote.transport import RetryPolicy, Transport
    from labelleak.oracle.remote.v2 import V2Oracle

    policy = RetryPolicy(timeout=cfg.timeout, retries=cfg.retries, max_wait=cfg.max_retry_wait, window=cfg.retry_window)
    if cfg.protocol == "rest":
        assert cfg.rest_spec is not None
        return RestOracle.from_spec(RestSpec.load(cfg.rest_spec), policy=policy, concurrency=cfg.concurrency)
    assert cfg.target is not None
    api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if cfg.api_key_env and not api_key:
        raise InvalidInputError(f"api_key_env: environment variable {cfg.api_key_env} is not set")
    headers = {"X-API-Key": api_key} if api_key else {}
    transport = Transport(cfg.target, policy=policy, headers=headers, concurrency=cfg.concurrency)
    try:
        if cfg.protocol == "v2":
            assert cfg.model_name is not None
            return V2Oracle(
                transport,
                model_name=cfg.model_name,
                input_shape=tuple(cfg.input_shape) if cfg.input_shape else None,
                bounds=(float(cfg.bounds[0]), float(cfg.bounds[1])) if cfg.bounds else None,
                n_classes=cfg.n_classes,
            )
        return LabelleakOracle(transport)
    except BaseException:
        transport.close()
        raise


def prepare_remote(cfg: AuditConfig) -> AuditSetup:
    """A target behind ``cfg.target`` (URL) or a REST spec: candidates and the shadow pool come from files."""
    from labelleak.pipeline.setup_own import load_own_data, setup_from_oracle

    oracle = connect_remote(cfg)
    try:
        data = load_own_data(cfg, oracle.input_shape, oracle.bounds)
        setup = setup_from_oracle(
            cfg,
            oracle,
            data,
            dataset={"name": "remote", "source": oracle.url},
            target={"url": oracle.url, "protocol": oracle.protocol},
            closers=[oracle.close],
        )
    except BaseException:
        oracle.close()
        raise
    setup.remote = oracle
    return setup


def prepare(cfg: AuditConfig, datasets: DatasetCache | None = None) -> AuditSetup:
    """The setup for ``cfg``: a remote target (``target`` URL or a REST spec), a model file (``model``), or a model
    labelleak trains."""
    if cfg.is_remote:
        return prepare_remote(cfg)
    if cfg.model:
        from labelleak.pipeline.setup_own import prepare_model

        return prepare_model(cfg)
    return prepare_local(cfg, datasets)
