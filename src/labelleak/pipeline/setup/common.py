"""What every target kind's setup ends as (:class:`AuditSetup`), and the part shared by the targets labelleak did
not train: the auditor's labelled data (:class:`OwnData`) laid out as candidates beside a shadow model.

Members are candidates ``0..M-1`` in the order of their file, non-members ``M..M+N-1``: those are the
``sample_index`` values of ``scores.csv``. The shadow pool is cut in two halves (seeded) to train the adversary's
shadow model, with the architecture ``shadow_arch`` (default: chosen from the input shape, as ``arch=auto`` does).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from labelleak.attacks.base import ShadowData
from labelleak.data import SplitSizes
from labelleak.data.candidates import KINDS, load_labelled
from labelleak.data.layout import shadow_halves
from labelleak.data.split import rows_taken
from labelleak.defenses import parse_defense
from labelleak.errors import InvalidInputError
from labelleak.models import ModelSpec, ModelStore, TrainSettings, build_model, train_or_load
from labelleak.models.training import validation_size
from labelleak.oracle import LabelOracle, TorchOracle
from labelleak.pipeline.config import AuditConfig
from labelleak.rng import content_keys

if TYPE_CHECKING:  # the remote oracles need the serve extra (httpx): imported where a remote audit starts
    from labelleak.oracle.remote import RemoteOracle

Labelled = tuple[np.ndarray, np.ndarray]


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
    # the defense the adversary's own models train and answer with: the target's in the adaptive evaluation of a
    # target labelleak trains (its defense is known), else none
    adversary_defense: str = "none"
    # the public pre-trained model the adversary's models start from (adaptive, ``public=N``), as a stored folder
    adversary_init: str | None = None
    # the one-run audit's canaries among the candidates (each a member by its own coin), or None: no canaries
    canary: np.ndarray | None = None

    @cached_property
    def keys(self) -> np.ndarray:
        """One content key per candidate (:func:`labelleak.rng.content_keys`), computed once: the order the metrics
        draw their halves and resamples in, so that no interval depends on the order the candidates came in."""
        return content_keys(torch.as_tensor(np.asarray(self.x))).numpy()

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


def train_settings(cfg: AuditConfig) -> TrainSettings:
    """The training recipe of the models an audit trains (the target's defense aside)."""
    return TrainSettings(
        epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, lr_schedule=cfg.lr_schedule
    )


def rows_beyond_split(cfg: AuditConfig, train_size: int | None = None) -> int:
    """Pool rows a target labelleak trains takes beyond its four parts: the defense's public pre-training rows,
    the validation rows of early stopping, adversarial regularisation or DP-SGD tuned outside the training set
    (at ``train_size`` members, default the config's), and the one-run audit's canaries."""
    plan = parse_defense(cfg.defense, seed=cfg.seed)
    settings = replace(train_settings(cfg), **plan.train)
    return plan.public + validation_size(train_size or cfg.train_size, settings) + cfg.canaries


def check_pool(cfg: AuditConfig, n_pool: int) -> None:
    """Refuse, before anything trains, a trained target whose four parts, public rows and validation rows do not
    fit in the dataset's pool (else a sweep fails at its first such defense, after the runs before it)."""
    beyond = rows_beyond_split(cfg)
    if not beyond:
        return
    shadow = cfg.shadow_size or cfg.train_size
    parts = rows_taken(SplitSizes(cfg.train_size, cfg.test_size or cfg.train_size, shadow, shadow), cfg.reserve_train)
    if parts <= n_pool < parts + beyond:  # four parts too large: the split says so itself
        what = f"defense {cfg.defense!r}" + (f" with {cfg.canaries} canaries" if cfg.canaries else "")
        raise InvalidInputError(
            f"{what}: needs {beyond} public, validation or canary rows beyond the four parts ({parts} samples), but "
            f"the pool of {n_pool} has only {n_pool - parts} beyond them; reduce --train-size/--test-size/"
            "--shadow-size, the defense's public rows or --canaries"
        )


@dataclass(frozen=True)
class OwnData:
    """The auditor's labelled samples: member and non-member candidates, and the adversary's shadow pool."""

    members: Labelled
    nonmembers: Labelled
    shadow: Labelled

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for x, y in (self.members, self.nonmembers, self.shadow):
            h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def load_own_data(cfg: AuditConfig, shape: tuple[int, ...], bounds: tuple[float, float]) -> OwnData:
    """Members, non-members and shadow pool from the files named in ``cfg``."""
    parts = []
    for what, path in (("members", cfg.members), ("nonmembers", cfg.nonmembers), ("shadow", cfg.shadow)):
        if not path:
            raise InvalidInputError(f"this audit needs --{what} FILE ({KINDS})")
        parts.append(load_labelled(path, what, shape, bounds))
    return OwnData(*parts)


def check_own_data(data: OwnData, oracle: LabelOracle) -> OwnData:
    """Arrays as float32/int64, of the oracle's sample shape, within its bounds, with labels in its classes."""
    clean = []
    lo, hi = oracle.bounds
    for what, (x, y) in zip(("members", "nonmembers", "shadow"), (data.members, data.nonmembers, data.shadow)):
        x, y = np.ascontiguousarray(x, dtype=np.float32), np.asarray(y)
        if tuple(x.shape[1:]) != oracle.input_shape or len(x) != len(y) or len(x) == 0:
            raise InvalidInputError(
                f"{what}: expected (x, y) with x of shape (N, {', '.join(map(str, oracle.input_shape))}) and one "
                f"label per sample, got x {x.shape} and y {y.shape}"
            )
        if y.dtype.kind not in "iu":
            raise InvalidInputError(f"{what}: labels must be integers, got dtype {y.dtype}")
        if not np.isfinite(x).all() or x.min() < lo - 1e-5 or x.max() > hi + 1e-5:
            raise InvalidInputError(f"{what}: values must be finite and lie within the target's bounds [{lo}, {hi}]")
        if y.min() < 0 or y.max() >= oracle.n_classes:
            raise InvalidInputError(
                f"{what}: labels lie in {int(y.min())}..{int(y.max())}, but the target has {oracle.n_classes} "
                f"classes (0..{oracle.n_classes - 1})"
            )
        clean.append((x, y.astype(np.int64)))
    return OwnData(*clean)


def setup_from_oracle(
    cfg: AuditConfig,
    oracle: LabelOracle,
    data: OwnData,
    *,
    dataset: dict[str, Any],
    target: dict[str, Any],
    closers: list | None = None,
) -> AuditSetup:
    """Train (or load) the adversary's shadow model on the shadow pool and lay out the candidates."""
    data = check_own_data(data, oracle)
    (xm, ym), (xn, yn), (xs, ys) = data.members, data.nonmembers, data.shadow
    shape = oracle.input_shape
    order = np.random.default_rng(cfg.seed).permutation(len(xs))
    half, _ = shadow_halves(len(xs))  # the layout --estimate counts (labelleak.data.layout)
    tr, te = order[:half], order[half:]
    spec = ModelSpec(cfg.shadow_arch or auto_arch(cfg, shape), shape, oracle.n_classes, cfg.width)
    build_model(spec)
    fingerprint = hashlib.sha256(xs.tobytes() + ys.tobytes()).hexdigest()[:16]
    shadow = train_or_load(
        ModelStore(cfg.cache_dir),
        xs,
        ys,
        fingerprint,
        spec,
        train_settings(cfg),
        tr,
        te,
        role="shadow",
        progress=cfg.progress,
    )
    x, y = np.concatenate([xm, xn]), np.concatenate([ym, yn])
    return AuditSetup(
        dataset={**dataset, "n_pool": len(x) + len(xs), "n_classes": oracle.n_classes, "input_shape": list(shape)},
        split={"members": len(xm), "nonmembers": len(xn), "shadow_train": len(tr), "shadow_test": len(te)},
        target={"train_accuracy": None, "test_accuracy": None, **target},
        shadow={"train_accuracy": shadow.train_accuracy, "test_accuracy": shadow.test_accuracy},
        arch=spec.arch,
        oracle=oracle,
        shadow_oracle=TorchOracle(shadow.model, input_shape=shape, n_classes=oracle.n_classes, bounds=oracle.bounds),
        sample_index=np.arange(len(x)),
        x=x,
        y=y,
        is_member=np.r_[np.ones(len(xm), bool), np.zeros(len(xn), bool)],
        shadow_data=ShadowData(xs[tr], ys[tr], xs[te], ys[te]),
        closers=list(closers or []),
        inputs_fingerprint=data.fingerprint(),
    )
